"""The one way the engine talks to a teacher LLM: `TeacherClient.complete` over LiteLLM.

It bounds concurrency, keeps to requests/tokens-per-minute limits, retries what is worth
retrying (honouring Retry-After), times calls out, serves repeated prompts from the cache and
keeps running totals of calls, tokens and cost. Keys come from the environment at call time and
never appear in the cache, logs or error messages.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

import anyio

from nanodistill.errors import NanodistillError
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
    `priced` is False once a call's model had no price, and `cost_usd` then counts priced calls."""

    calls: int = 0
    cached_calls: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    priced: bool = True
    latency_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
        self.totals = TeacherTotals()
        self._custom_price = (
            {"input_cost_per_token": input_cost_per_token or 0.0, "output_cost_per_token": output_cost_per_token or 0.0}
            if input_cost_per_token is not None or output_cost_per_token is not None
            else None
        )
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._rate = RateLimiter(rpm, tpm)
        self._not_before = 0.0
        self._unpriced = False

    async def complete(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float = 0.7,
        max_tokens: int | None = None,
        seed_tag: str = "",
    ) -> TeacherReply:
        """One chat completion, from the cache when this exact request was made before."""
        params: dict[str, Any] = {"temperature": temperature}
        if max_tokens is not None:
            params["max_tokens"] = max_tokens
        key = cache_key(self.routed_model, self.api_base, messages, params, seed_tag)
        if self.cache is not None:
            hit = await self.cache.get(key)
            if hit is not None:
                self.totals.cached_calls += 1
                return TeacherReply(hit.text, hit.prompt_tokens, hit.completion_tokens, 0.0, True, key, hit.latency_s)
        reply = await self._call_with_retries(messages, params)
        if self.cache is not None and reply.text.strip():
            request = {"api_base": self.api_base, "messages": messages, "params": params, "seed_tag": seed_tag}
            await self.cache.put(key, model=self.routed_model, request=request, reply=reply, job_id=self.job_id)
        return TeacherReply(
            reply.text, reply.prompt_tokens, reply.completion_tokens, reply.cost_usd, False, key, reply.latency_s
        )

    async def _call_with_retries(self, messages: list[dict[str, str]], params: dict[str, Any]) -> CachedReply:
        litellm = load_litellm()
        key = api_key(self.model, self.api_base, self.api_key_env)
        attempt = 0
        while True:
            await self._wait_turn()
            try:
                async with self._limiter:
                    return await self._call_once(litellm, messages, params, key)
            except Exception as exc:
                failure = classify(exc)
                detail = redact(str(exc), (key,) if key else ())[:300]
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

    async def _call_once(
        self, litellm: ModuleType, messages: list[dict[str, str]], params: dict[str, Any], key: str | None
    ) -> CachedReply:
        kwargs: dict[str, Any] = {
            "model": self.routed_model,
            "messages": messages,
            "timeout": self.timeout_s,
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
        started = time.monotonic()
        with anyio.fail_after(self.timeout_s + 1):
            response = await litellm.acompletion(**kwargs)
        latency = time.monotonic() - started
        text = response.choices[0].message.content or ""
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        cost = self._cost(litellm, response)
        totals = self.totals
        totals.calls += 1
        totals.prompt_tokens += prompt_tokens
        totals.completion_tokens += completion_tokens
        totals.latency_s += latency
        if cost is None:
            totals.priced = False
        else:
            totals.cost_usd += cost
        self._rate.spend(prompt_tokens + completion_tokens)
        return CachedReply(text, prompt_tokens, completion_tokens, cost, latency)

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
