"""Teacher calls through a provider's batch API (OpenAI's `/v1/files` + `/v1/batches`, via LiteLLM).

A batch costs about half as much and puts no pressure on rate limits, but answers in minutes to hours.
`BatchTeacherClient` is a `TeacherClient` whose uncached requests wait in a queue; once every caller
is either waiting on the queue or idle (`caller_idle`), the queue goes out as one batch, which is
recorded in SQLite the moment the provider accepts it, polled until done, and collected into the
call ledger in one transaction. A job restarted after a crash collects its open batches first
(`resume_open_batches`), so the same requests are never paid for twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import anyio
import httpx

from nanodistill.errors import NanodistillError
from nanodistill.store import teacher_batches, teacher_calls
from nanodistill.store.db import Store
from nanodistill.teacher.cache import CachedReply
from nanodistill.teacher.client import TeacherClient, TeacherError
from nanodistill.teacher.provider import api_key, load_litellm, provider_of, redact
from nanodistill.teacher.retry import backoff_s, classify

log = logging.getLogger(__name__)

# Without a batch rate in LiteLLM's price map, a batch call costs this share of a live one (OpenAI's rate).
BATCH_DISCOUNT = 0.5
# Providers whose batches LiteLLM drives through the OpenAI-shaped files + batches API.
BATCH_PROVIDERS = frozenset({"openai", "azure", "hosted_vllm", "litellm_proxy"})
BATCH_ENDPOINT = "/v1/chat/completions"
BATCH_ATTEMPTS = 3  # a request whose batch line failed goes into the next batch, this many times in all
FIRST_POLL_S = 0.5
MAX_POLL_S = 60.0
LIST_LIMIT = 100  # batches listed when looking for one whose id a crash lost (the provider lists newest first)
POLL_GROWTH = 1.5
_DONE = {"completed", "failed", "expired", "cancelled"}
NOT_FOUND = 404
_NO_ENDPOINT = {NOT_FOUND, 405}


def no_batch_api(model: str, api_base: str | None, detail: str) -> str:
    where = f" at {api_base}" if api_base else ""
    return (
        f"'batch': teacher {model}{where} has no batch API ({detail}); batch=True needs OpenAI-style "
        "/v1/files and /v1/batches endpoints (OpenAI, Azure, vLLM, a LiteLLM proxy): run without batch=True"
    )


async def check_batch_api(model: str, api_base: str | None) -> None:
    """Raise NanodistillError (naming 'batch') when the teacher has no batch endpoints: a provider LiteLLM
    cannot batch for, or an api_base whose /batches answers 404."""
    provider = provider_of(model, api_base)
    if provider not in BATCH_PROVIDERS:
        raise NanodistillError(no_batch_api(model, api_base, f"LiteLLM sends no batches to provider {provider}"))
    if not api_base:
        return
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            answer = await client.get(api_base.rstrip("/") + "/batches", params={"limit": 1})
    except httpx.HTTPError as exc:
        raise NanodistillError(no_batch_api(model, api_base, f"{type(exc).__name__} at /batches")) from None
    if answer.status_code in _NO_ENDPOINT:
        raise NanodistillError(no_batch_api(model, api_base, f"GET /batches answered {answer.status_code}"))


def batch_price(
    teacher: TeacherClient, prompt_tokens: int, completion_tokens: int, *, custom_price: bool
) -> float | None:
    """USD for this many tokens sent in a batch: LiteLLM's batch rates for the model when its price map has
    them, else BATCH_DISCOUNT of the live price (a `custom_price` per token is a live price). None: unpriced."""
    if not custom_price:
        litellm = load_litellm()
        try:
            info = litellm.get_model_info(model=teacher.routed_model)
        except Exception:
            info = {}
        prompt_rate, completion_rate = (
            info.get("input_cost_per_token_batches"),
            info.get("output_cost_per_token_batches"),
        )
        if prompt_rate is not None and completion_rate is not None:
            return float(prompt_tokens * prompt_rate + completion_tokens * completion_rate)
    live = teacher.price(prompt_tokens, completion_tokens)
    return None if live is None else live * BATCH_DISCOUNT


class BatchGone(NanodistillError):
    """The provider answers 404 for a batch it created: deleted, or forgotten by a restarted local server."""


@dataclass
class _Waiting:
    """One request in the queue, and what became of it."""

    key: str
    request: dict[str, Any]
    done: anyio.Event
    reply: CachedReply | None = None
    error: str | None = None
    fatal: bool = False


class BatchTeacherClient(TeacherClient):
    """A teacher whose network calls go out in batches; `callers` is how many tasks share it (the amplify
    pipeline's workers), so it knows when nobody can add to the queue any more."""

    def __init__(self, model: str, *, store: Store, job_id: str, callers: int, **options: Any) -> None:
        super().__init__(model, concurrency=callers, job_id=job_id, **options)
        self.store = store
        self.callers = callers
        self.custom_price = any(options.get(f) is not None for f in ("input_cost_per_token", "output_cost_per_token"))
        self.batches_sent = 0
        self.batches_resumed = 0
        self.batches_lost = 0
        self._queue: list[_Waiting] = []
        self._idle = 0

    async def _fetch(self, key: str, request: dict[str, Any]) -> CachedReply:
        last = ""
        for _ in range(BATCH_ATTEMPTS):
            waiting = _Waiting(key, request, anyio.Event())
            self._queue.append(waiting)
            await self._submit_when_ready()
            await waiting.done.wait()
            if waiting.reply is not None:
                return waiting.reply
            last = waiting.error or "no reply"
            if waiting.fatal:
                raise TeacherError(last)
            self.totals.retries += 1
        raise TeacherError(f"teacher {self.model}: a request failed in {BATCH_ATTEMPTS} batches, last: {last}")

    @asynccontextmanager
    async def caller_idle(self) -> AsyncIterator[None]:
        self._idle += 1
        try:
            await self._submit_when_ready()
            yield
        finally:
            self._idle -= 1

    async def _submit_when_ready(self) -> None:
        """Send the queue as one batch once no caller could add to it; the caller that completes the count
        runs the batch, and every waiting request learns its reply or error (this never raises)."""
        if not self._queue or len(self._queue) + self._idle < self.callers:
            return
        sent, self._queue = self._queue, []
        try:
            replies = await self._run_batch(sent)
        except Exception as exc:
            error = str(exc) if isinstance(exc, NanodistillError) else f"teacher batch failed: {exc!r}"[:400]
            for waiting in sent:
                waiting.error, waiting.fatal = redact(error), True
                waiting.done.set()
            return
        for waiting in sent:
            found = replies.get(waiting.key)
            if isinstance(found, CachedReply):
                waiting.reply = found
            else:
                waiting.error = found or "the batch output had no line for this request"
            waiting.done.set()

    # -- one batch ------------------------------------------------------------------------------------

    def _auth(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "custom_llm_provider": provider_of(self.model, self.api_base),
            "timeout": self.timeout_s,
        }
        if self.api_base:
            options["api_base"] = self.api_base
        key = api_key(self.model, self.api_base, self.api_key_env)
        if key is not None:
            options["api_key"] = key
        return options

    def _failed(self, step: str, exc: Exception, auth: dict[str, Any]) -> NanodistillError:
        failure = classify(exc)
        detail = redact(str(exc), (auth.get("api_key") or "",))[:300]
        if failure.status in _NO_ENDPOINT:
            return NanodistillError(no_batch_api(self.model, self.api_base, f"{step} answered {failure.status}"))
        where = f" at {self.api_base}" if self.api_base else ""
        return TeacherError(
            f"teacher {self.model}{where}: {step} failed: {failure.reason} ({detail}); the batches already sent "
            "are recorded: resume the job to collect them"
        )

    async def _run_batch(self, sent: list[_Waiting]) -> dict[str, CachedReply | str]:
        """Upload the requests, record the upload, create the batch, record its id, then collect it."""
        litellm = load_litellm()
        auth = self._auth()
        requests = {waiting.key: waiting.request for waiting in sent}  # a key asked twice goes once
        body_model = self.routed_model.split("/", 1)[1] if "/" in self.routed_model else self.routed_model
        lines = [
            json.dumps(
                {
                    "custom_id": key,
                    "method": "POST",
                    "url": BATCH_ENDPOINT,
                    "body": {"model": body_model, "messages": request["messages"], **request["params"]},
                },
                ensure_ascii=False,
            )
            for key, request in requests.items()
        ]
        content = ("\n".join(lines) + "\n").encode()
        try:
            uploaded = await litellm.acreate_file(
                file=("nanodistill-batch.jsonl", content, "application/jsonl"), purpose="batch", **auth
            )
        except Exception as exc:
            raise self._failed("POST /files", exc, auth) from None
        async with self.store.write() as db:
            await teacher_batches.insert_upload(
                db,
                uploaded.id,
                job_id=self.job_id or "",
                model=self.routed_model,
                api_base=self.api_base,
                requests=requests,
            )
        try:
            batch = await litellm.acreate_batch(
                completion_window="24h",
                endpoint=BATCH_ENDPOINT,
                input_file_id=uploaded.id,
                metadata={"nanodistill_job": self.job_id or ""},
                **auth,
            )
        except Exception as exc:
            raise self._failed("POST /batches", exc, auth) from None
        async with self.store.write() as db:
            await teacher_batches.mark_submitted(db, uploaded.id, batch.id)
        self.batches_sent += 1
        log.info("teacher %s: batch %s submitted with %d requests", self.model, batch.id, len(requests))
        replies = await self._collect(litellm, auth, uploaded.id, batch.id, requests)
        for reply in replies.values():
            if isinstance(reply, CachedReply):
                self._account(reply)
        return replies

    async def resume_open_batches(self) -> int:
        """Collect the batches an earlier attempt of this job sent and never collected (their replies go to
        the ledger, where the job's calls find them); an upload whose batch id was never recorded is looked
        up among the provider's batches by its file. Returns the number of batches collected."""
        found = await teacher_batches.open_batches(self.store, self.job_id or "", self.routed_model, self.api_base)
        if not found:
            return 0
        litellm = load_litellm()
        auth = self._auth()
        collected = 0
        for batch in found:
            batch_id = batch.batch_id or await self._find_batch(litellm, auth, batch.input_file_id)
            if batch_id is None:  # the provider never created it: its requests go out again with the job's
                async with self.store.write() as db:
                    await teacher_batches.mark_ended(db, batch.input_file_id, "never_created")
                continue
            if batch.batch_id is None:
                async with self.store.write() as db:
                    await teacher_batches.mark_submitted(db, batch.input_file_id, batch_id)
            try:
                await self._collect(litellm, auth, batch.input_file_id, batch_id, batch.requests)
            except BatchGone as gone:  # nothing to collect: its requests go out again with the job's
                log.warning("%s", gone)
                self.batches_lost += 1
                async with self.store.write() as db:
                    await teacher_batches.mark_ended(db, batch.input_file_id, "lost")
                continue
            collected += 1
        self.batches_resumed += collected
        return collected

    async def _find_batch(self, litellm: ModuleType, auth: dict[str, Any], input_file_id: str) -> str | None:
        """The id of the provider's batch made from this uploaded file, among its most recent batches."""
        try:
            page = await litellm.alist_batches(limit=LIST_LIMIT, **auth)
        except Exception as exc:
            raise self._failed("GET /batches", exc, auth) from None
        for item in getattr(page, "data", None) or []:
            if getattr(item, "input_file_id", None) == input_file_id:
                return str(item.id)
        return None

    async def _status(self, litellm: ModuleType, auth: dict[str, Any], batch_id: str) -> Any:
        """The batch as the provider reports it now, asking again (with backoff) after a failure worth it."""
        attempt = 0
        while True:
            try:
                return await litellm.aretrieve_batch(batch_id=batch_id, **auth)
            except Exception as exc:
                failure = classify(exc)
                if failure.status == NOT_FOUND:
                    raise BatchGone(f"teacher {self.model}: the provider no longer knows batch {batch_id}") from None
                if not failure.retryable or attempt >= self.max_retries:
                    raise self._failed(f"GET /batches/{batch_id}", exc, auth) from None
            await anyio.sleep(backoff_s(attempt, failure, base_s=self.backoff_base_s, cap_s=self.backoff_cap_s))
            attempt += 1

    async def _collect(
        self,
        litellm: ModuleType,
        auth: dict[str, Any],
        input_file_id: str,
        batch_id: str,
        requests: dict[str, dict[str, Any]],
    ) -> dict[str, CachedReply | str]:
        """Poll a batch until it ends, read its output, and record the replies and the batch's end at once.
        A request without a reply maps to the reason (a batch that failed or expired gives its status)."""
        started = time.monotonic()
        wait = FIRST_POLL_S
        while (batch := await self._status(litellm, auth, batch_id)).status not in _DONE:
            await anyio.sleep(wait)
            wait = min(wait * POLL_GROWTH, MAX_POLL_S)
        elapsed = time.monotonic() - started
        ended = f"batch {batch_id} ended {batch.status} ({str(getattr(batch, 'errors', None))[:200]})"
        replies: dict[str, CachedReply | str] = dict.fromkeys(requests, ended)
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                try:
                    text = (await litellm.afile_content(file_id=file_id, **auth)).text
                except Exception as exc:
                    raise self._failed(f"GET /files/{file_id}/content", exc, auth) from None
                replies.update(self._read_output(text, elapsed))
        async with self.store.write() as db:
            for key, reply in replies.items():
                if isinstance(reply, CachedReply) and reply.text.strip() and key in requests:
                    await teacher_calls.insert_call(
                        db,
                        key,
                        model=self.routed_model,
                        request=requests[key],
                        text=reply.text,
                        prompt_tokens=reply.prompt_tokens,
                        completion_tokens=reply.completion_tokens,
                        cost_usd=reply.cost_usd,
                        latency_s=reply.latency_s,
                        job_id=self.job_id,
                    )
            await teacher_batches.mark_ended(db, input_file_id, "collected")
        return replies

    def _read_output(self, text: str, elapsed: float) -> dict[str, CachedReply | str]:
        """Each output line's reply at the batch price, or the error it carries."""
        replies: dict[str, CachedReply | str] = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            response = row.get("response") or {}
            body = response.get("body") or {}
            if row.get("error") or response.get("status_code") != 200 or not body.get("choices"):
                replies[row["custom_id"]] = f"batch line failed: {json.dumps(row.get('error') or body)[:300]}"
                continue
            usage = body.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            completion_tokens = int(usage.get("completion_tokens") or 0)
            replies[row["custom_id"]] = CachedReply(
                body["choices"][0]["message"].get("content") or "",
                prompt_tokens,
                completion_tokens,
                batch_price(self, prompt_tokens, completion_tokens, custom_price=self.custom_price),
                elapsed,
            )
        return replies
