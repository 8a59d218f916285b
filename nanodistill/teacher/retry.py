"""Which teacher failures are worth retrying, and how long to wait before the next try.

Rate limits (429), server errors (5xx), request timeouts (408), conflicts (409), timeouts and
lost connections are retried; anything else (bad request, bad key, unknown model) is not, since
asking again gives the same answer. Waits grow exponentially with jitter, except that a
server's `Retry-After` is honoured as given.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

MAX_RETRY_AFTER_S = 600.0
_RETRY_STATUSES = {408, 409, 429}


@dataclass(frozen=True)
class Failure:
    retryable: bool
    reason: str
    status: int | None
    retry_after_s: float | None


def _headers(exc: BaseException) -> Mapping[str, str] | None:
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    return headers if isinstance(headers, Mapping) else None


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date), if present."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(float(lowered["retry-after-ms"]) / 1000, 0.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def classify(exc: BaseException) -> Failure:
    """Sort a failed call into retryable or not, with a short reason that carries no secrets."""
    if isinstance(exc, TimeoutError):
        return Failure(True, "timed out", None, None)
    if isinstance(exc, httpx.TransportError):
        return Failure(True, f"connection failed ({type(exc).__name__})", None, None)
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int):
        return Failure(False, type(exc).__name__, None, None)
    name = type(exc).__name__
    if status == 429:
        return Failure(True, "rate limited (429)", status, retry_after_s(_headers(exc)))
    if status >= 500 or status in _RETRY_STATUSES:
        return Failure(True, f"{name} ({status})", status, retry_after_s(_headers(exc)))
    return Failure(False, f"{name} ({status})", status, None)


def backoff_s(attempt: int, failure: Failure, *, base_s: float, cap_s: float) -> float:
    """The wait before retry number `attempt` (0-based): Retry-After when given, else capped
    exponential backoff with jitter so that concurrent callers spread out."""
    if failure.retry_after_s is not None:
        wait = min(failure.retry_after_s, MAX_RETRY_AFTER_S)
        return wait + random.uniform(0, 0.1 * wait + 0.05)
    ceiling = min(cap_s, base_s * 2**attempt)
    return random.uniform(ceiling / 2, ceiling)
