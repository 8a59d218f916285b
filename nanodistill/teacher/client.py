"""The one way the engine talks to a teacher LLM: `TeacherClient.complete` over LiteLLM.

It keeps as many calls in flight as the teacher endpoint actually serves at once (found as it goes,
up to the `concurrency` ceiling: see `adaptive.py`), keeps to requests/tokens-per-minute limits,
retries what is worth retrying (honouring Retry-After), times calls out counting only the time they
are served, sends a duplicate of a call that takes far longer than its peers (the first reply wins),
serves repeated prompts from the cache and keeps running totals of calls, tokens and cost. Keys come
from the environment at call time and never appear in the cache, logs or error messages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any, Generic, TypeVar

import anyio

from nanodistill.errors import NanodistillError
from nanodistill.teacher import prompts
from nanodistill.teacher.adaptive import Outcome, Slot, TailTracker, endpoint_gate
from nanodistill.teacher.cache import CachedReply, TeacherCache, cache_key
from nanodistill.teacher.limits import RateLimiter
from nanodistill.teacher.provider import api_key, load_litellm, redact, route_model
from nanodistill.teacher.retry import Failure, backoff_s, classify

log = logging.getLogger(__name__)

_HINTS = {
    401: "the provider rejected the API key: check the environment variable that holds it",
    403: "the API key may not use this model",
    404: "check the model name and api_base",
}
# Sent once a model proved unpriced: LiteLLM then skips its costly price-map search on every call;
# the client still reports those calls as unpriced (cost None), never as free.
_ZERO_PRICE = {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0}
# Statuses that mean the endpoint has more than it can take: the adaptive limit backs off.
_OVERLOAD_STATUSES = {408, 429, 503, 529}
# Duplicates per call, and in all at most HEDGE_BUDGET of the calls sent plus HEDGE_SPARE: hedging a
# teacher that is slow across the board would only double its load.
MAX_HEDGES = 2
HEDGE_BUDGET = 0.1
HEDGE_SPARE = 3
HEDGE_POLL_S = 0.25
JSON_MODE = {"type": "json_object"}

T = TypeVar("T")


class TeacherError(NanodistillError):
    """A teacher call failed for good (retries used up, or a failure retrying cannot fix)."""


@dataclass(frozen=True)
class TeacherReply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    cached: bool
    key: str
    latency_s: float


@dataclass
class TeacherTotals:
    """Running totals; tokens and cost count network calls only (cached replies are free).
    `priced` is False once a call's model had no price, and `cost_usd` then counts priced calls.
    `hedges` counts duplicates sent for slow calls, `hedge_wins` the calls a duplicate answered first
    (a cancelled duplicate is counted as a call at its winner's price); `concurrency_limit` is the
    calls in flight the client settled on for this endpoint, at most the ceiling it was given.
    `repairs` counts unreadable replies sent back asking for just the JSON, `repaired` those that
    came back readable."""

    calls: int = 0
    cached_calls: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    priced: bool = True
    latency_s: float = 0.0
    timeouts: int = 0
    hedges: int = 0
    hedge_wins: int = 0
    concurrency_limit: int | None = None
    repairs: int = 0
    repaired: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Readable(Generic[T]):
    """A reply as read: `value` is None when even the repair came back unreadable; `replies` are the
    network or cached replies it took (one, or two with the repair)."""

    value: T | None
    replies: list[TeacherReply]

    @property
    def repaired(self) -> bool:
        return self.value is not None and len(self.replies) > 1


@dataclass
class _Race:
    """One call's requests: the original and its duplicates."""

    running: int = 0
    hedges: int = 0
    winner: CachedReply | None = None
    errors: list[Exception] = field(default_factory=list)


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or classify(exc).status == 408


def _is_drop(exc: BaseException) -> bool:
    """Whether a failure says the endpoint is overloaded (not that the request was bad)."""
    return _is_timeout(exc) or classify(exc).status in _OVERLOAD_STATUSES


class TeacherClient:
    """An async teacher over `litellm.acompletion`; one per job, shared by all its tasks.

    `input_cost_per_token` / `output_cost_per_token` (USD) price a model LiteLLM does not know
    (a local server, a private deployment) so that budgets apply to it too.
    """

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key_env: str | None = None,
        concurrency: int = 8,
        rpm: int | None = None,
        tpm: int | None = None,
        timeout_s: float = 60,
        max_retries: int = 6,
        cache: TeacherCache | None = None,
        job_id: str | None = None,
        input_cost_per_token: float | None = None,
        output_cost_per_token: float | None = None,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        max_tokens: int | None = None,
    ) -> None:
        if concurrency < 1:
            raise NanodistillError(f"teacher concurrency must be at least 1, got {concurrency}")
        self.model = model
        self.api_base = api_base
        self.api_key_env = api_key_env
        self.routed_model = route_model(model, api_base)
        self.concurrency = concurrency
        self.rpm = rpm
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.cache = cache
        self.job_id = job_id
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.max_tokens = max_tokens
        self.totals = TeacherTotals()
        self._custom_price = (
            {"input_cost_per_token": input_cost_per_token or 0.0, "output_cost_per_token": output_cost_per_token or 0.0}
            if input_cost_per_token is not None or output_cost_per_token is not None
            else None
        )
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._gate = endpoint_gate(self.routed_model, api_base, concurrency)
        self._tail = TailTracker()
        self._sent = 0
        self._rate = RateLimiter(rpm, tpm)
        self._not_before = 0.0
        self._unpriced = False
        self._json_mode: bool | None = None  # whether the provider takes response_format (asked once)

    async def complete(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float = 0.7,
        max_tokens: int | None = None,
        seed_tag: str = "",
        json_reply: bool = False,
    ) -> TeacherReply:
        """One chat completion, from the cache when this exact request was made before. `json_reply` asks
        the provider's JSON mode where LiteLLM says it has one (a small model then cannot wander off it);
        `max_tokens` defaults to the client's reply cap."""
        params: dict[str, Any] = {"temperature": temperature}
        if (cap := max_tokens if max_tokens is not None else self.max_tokens) is not None:
            params["max_tokens"] = cap
        if json_reply and self._takes_json_mode():
            params["response_format"] = JSON_MODE
        key = cache_key(self.routed_model, self.api_base, messages, params, seed_tag)
        if self.cache is not None:
            hit = await self.cache.get(key)
            if hit is not None:
                self.totals.cached_calls += 1
                return TeacherReply(hit.text, hit.prompt_tokens, hit.completion_tokens, 0.0, True, key, hit.latency_s)
        request = {"api_base": self.api_base, "messages": messages, "params": params, "seed_tag": seed_tag}
        reply = await self._fetch(key, request)
        if self.cache is not None and reply.text.strip():
            await self.cache.put(key, model=self.routed_model, request=request, reply=reply, job_id=self.job_id)
        return TeacherReply(
            reply.text, reply.prompt_tokens, reply.completion_tokens, reply.cost_usd, False, key, reply.latency_s
        )

    async def complete_readable(
        self,
        messages: list[dict[str, str]],
        read: Callable[[str], T | None],
        *,
        temperature: float = 0.7,
        seed_tag: str = "",
    ) -> Readable[T]:
        """A JSON reply read by `read`; an unreadable one is sent back once asking for just the JSON, so a
        reply counts as malformed only when the repair is unreadable too."""
        first = await self.complete(messages, temperature=temperature, seed_tag=seed_tag, json_reply=True)
        return await self.read_or_repair(messages, first, read, temperature=temperature, seed_tag=seed_tag)

    async def read_or_repair(
        self,
        messages: list[dict[str, str]],
        first: TeacherReply,
        read: Callable[[str], T | None],
        *,
        temperature: float = 0.7,
        seed_tag: str = "",
    ) -> Readable[T]:
        """`first` (the reply to `messages`) read, or else its one repair request read."""
        value = read(first.text)
        if value is not None:
            return Readable(value, [first])
        self.totals.repairs += 1
        second = await self.complete(
            prompts.repair_messages(messages, first.text), temperature=temperature, seed_tag=seed_tag, json_reply=True
        )
        value = read(second.text)
        if value is not None:
            self.totals.repaired += 1
        return Readable(value, [first, second])

    async def _fetch(self, key: str, request: dict[str, Any]) -> CachedReply:
        """The reply to one uncached request (`key` is its cache key); the batch client sends it in a batch."""
        return await self._call_with_retries(request["messages"], request["params"])

    @asynccontextmanager
    async def caller_idle(self) -> AsyncIterator[None]:
        """Held by a caller while it waits for other work rather than for the teacher; live calls need not
        know, the batch client submits once every caller is idle or waiting on it."""
        yield

    def _takes_json_mode(self) -> bool:
        if self._json_mode is None:
            litellm = load_litellm()
            try:
                _, provider, _, _ = litellm.get_llm_provider(model=self.routed_model, api_base=self.api_base)
                supported = litellm.get_supported_openai_params(model=self.routed_model, custom_llm_provider=provider)
            except Exception:
                supported = None
            self._json_mode = "response_format" in (supported or [])
        return self._json_mode

    async def _call_with_retries(self, messages: list[dict[str, str]], params: dict[str, Any]) -> CachedReply:
        litellm = load_litellm()
        key = api_key(self.model, self.api_base, self.api_key_env)
        attempt = 0
        while True:
            await self._wait_turn()
            try:
                async with self._limiter:
                    return await self._served_call(litellm, self._kwargs(messages, params, key))
            except Exception as exc:
                failure = classify(exc)
                detail = redact(str(exc), (key,) if key else ())[:300]
                if failure.status == 400 and params.pop("response_format", None) is not None:
                    self._json_mode = False  # a server that rejects JSON mode is asked plainly from now on
                    log.warning("teacher %s rejected JSON mode (%s); asking without it", self.model, detail)
                    continue
                if not failure.retryable or attempt >= self.max_retries:
                    raise TeacherError(self._give_up_message(failure, attempt + 1, detail)) from None
            wait = backoff_s(attempt, failure, base_s=self.backoff_base_s, cap_s=self.backoff_cap_s)
            if failure.retry_after_s is not None:
                self._not_before = max(self._not_before, time.monotonic() + wait)
            attempt += 1
            self.totals.retries += 1
            log.warning(
                "teacher %s: %s; retry %d/%d in %.1f s", self.model, failure.reason, attempt, self.max_retries, wait
            )
            await anyio.sleep(wait)

    async def _wait_turn(self) -> None:
        """Wait out a shared Retry-After pause (one 429 slows every caller), then the rate limits."""
        pause = self._not_before - time.monotonic()
        if pause > 0:
            await anyio.sleep(pause)
        await self._rate.acquire()

    def _kwargs(self, messages: list[dict[str, str]], params: dict[str, Any], key: str | None) -> dict[str, Any]:
        # The transport's own timeout is only a backstop: a call may wait at the server behind our own
        # calls (at most the ceiling's worth) before its served clock, which enforces timeout_s, starts.
        kwargs: dict[str, Any] = {
            "model": self.routed_model,
            "messages": messages,
            "timeout": self.timeout_s * (self.concurrency + 1),
            "num_retries": 0,
            "max_retries": 0,
            "drop_params": True,
            **params,
        }
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self._custom_price is not None:
            kwargs.update(self._custom_price)
        elif self._unpriced:
            kwargs.update(_ZERO_PRICE)
        if key is not None:
            kwargs["api_key"] = key
        return kwargs

    async def _served_call(self, litellm: ModuleType, kwargs: dict[str, Any]) -> CachedReply:
        """One call through the endpoint's adaptive gate; what it shows about load goes back to the gate."""
        slot = await self._gate.acquire()
        outcome = Outcome.IGNORE
        try:
            race = await self._race(slot, litellm, kwargs)
            # a hedged call's latency is a stall, not a measure of load
            outcome = Outcome.SUCCESS if race.hedges == 0 else Outcome.REPLIED
            assert race.winner is not None
            return race.winner
        except Exception as exc:
            if _is_drop(exc):
                outcome = Outcome.DROP
            raise
        finally:
            self._gate.release(slot, outcome)
            self.totals.concurrency_limit = self._gate.limit.slots

    async def _race(self, slot: Slot, litellm: ModuleType, kwargs: dict[str, Any]) -> _Race:
        """The call, plus a duplicate whenever it runs far longer than its peers; the first reply wins and
        the others are cancelled. Raises the first failure when every request failed."""
        race = _Race()

        async def request(original: bool) -> None:
            started = anyio.current_time()
            try:
                with anyio.CancelScope() as clock:
                    if original:  # the timeout counts from when the call is served, not queued behind ours
                        slot.watch_clock(lambda at: setattr(clock, "deadline", at + self.timeout_s))
                    else:
                        clock.deadline = started + self.timeout_s
                    reply = await self._request(litellm, kwargs)
                if clock.cancelled_caught:
                    raise TimeoutError(f"no reply within {self.timeout_s:g} s of being served")
            except Exception as exc:
                race.running -= 1
                race.errors.append(exc)
                if _is_timeout(exc):
                    self.totals.timeouts += 1
                if race.running == 0:
                    tg.cancel_scope.cancel()
                return
            race.running -= 1
            self._account(reply)
            served_from = slot.served_at if original else started
            if served_from is not None:
                self._tail.add(anyio.current_time() - served_from)
            if race.winner is None:
                race.winner = reply
                if not original:
                    self.totals.hedge_wins += 1
                for _ in range(race.running):  # cancelled duplicates: a provider that finished them bills them
                    self._account(reply)
                tg.cancel_scope.cancel()

        async def hedge_when_slow() -> None:
            since: float | None = None
            while race.hedges < MAX_HEDGES:
                after = self._tail.hedge_after_s()
                start = since if since is not None else slot.served_at
                if after is None or start is None:
                    await anyio.sleep(HEDGE_POLL_S)
                    continue
                wait = start + after - anyio.current_time()
                if wait > 0:
                    await anyio.sleep(wait)
                    continue
                if self.totals.hedges >= HEDGE_BUDGET * self._sent + HEDGE_SPARE:
                    return
                race.hedges += 1
                race.running += 1
                self.totals.hedges += 1
                since = anyio.current_time()
                log.info("teacher %s: a call ran past %.1f s, far beyond its peers; sent a copy", self.model, after)
                tg.start_soon(request, False)

        self._sent += 1
        race.running = 1
        async with anyio.create_task_group() as tg:
            tg.start_soon(request, True)
            tg.start_soon(hedge_when_slow)
        if race.winner is None:
            raise race.errors[0]
        return race

    async def _request(self, litellm: ModuleType, kwargs: dict[str, Any]) -> CachedReply:
        """One network request; accounting is the caller's (a cancelled duplicate is still paid for)."""
        started = time.monotonic()
        response = await litellm.acompletion(**kwargs)
        latency = time.monotonic() - started
        text = response.choices[0].message.content or ""
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        return CachedReply(text, prompt_tokens, completion_tokens, self._cost(litellm, response), latency)

    def _account(self, reply: CachedReply) -> None:
        totals = self.totals
        totals.calls += 1
        totals.prompt_tokens += reply.prompt_tokens
        totals.completion_tokens += reply.completion_tokens
        totals.latency_s += reply.latency_s
        if reply.cost_usd is None:
            totals.priced = False
        else:
            totals.cost_usd += reply.cost_usd
        self._rate.spend(reply.prompt_tokens + reply.completion_tokens)

    def concurrency_report(self) -> dict[str, Any]:
        """What the client learned about its endpoint: the limit it settled on (at most the ceiling),
        the calls the endpoint was seen to serve at once, and the fastest reply (the baseline)."""
        limit = self._gate.limit
        return {
            "limit": limit.slots,
            "ceiling": self.concurrency,
            "parallelism": limit.parallelism,
            "baseline_latency_s": None if limit.baseline_s is None else round(limit.baseline_s, 3),
            "timeouts": self.totals.timeouts,
            "hedges": self.totals.hedges,
        }

    def _cost(self, litellm: ModuleType, response: Any) -> float | None:
        """USD for one reply: the cost LiteLLM computed with `completion_cost` while answering (from its
        price map or the per-call custom price), else computed here; None when the model is unpriced."""
        if self._unpriced:
            return None
        cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
        if cost is None:
            try:
                cost = litellm.completion_cost(completion_response=response, custom_cost_per_token=self._custom_price)
            except Exception:
                self._unpriced = True
                return None
        return float(cost)

    def price(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """What this many tokens would cost with this teacher (for quotes); None when unpriced."""
        litellm = load_litellm()
        try:
            prompt_usd, completion_usd = litellm.cost_per_token(
                model=self.routed_model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                custom_cost_per_token=self._custom_price,
            )
        except Exception:
            return None
        return float(prompt_usd + completion_usd)

    def _give_up_message(self, failure: Failure, attempts: int, detail: str) -> str:
        where = f" at {self.api_base}" if self.api_base else ""
        if failure.retryable:
            head = f"teacher {self.model}{where} failed {attempts} times in a row, last: {failure.reason}"
            hint = "wait and resume the job, lower the concurrency, or raise timeout_s / max_retries"
        else:
            head = f"teacher {self.model}{where} refused the call: {failure.reason}"
            hint = _HINTS.get(failure.status or 0, "check the model name, api_base and parameters")
        return f"{head} ({detail}); {hint}"
