"""Requests- and tokens-per-minute limits over a sliding one-minute window."""

from __future__ import annotations

import time
from collections import deque

import anyio

WINDOW_S = 60.0


class RateLimiter:
    """Waits before a call until the last minute holds fewer than `rpm` calls and `tpm` tokens.

    Token counts are known only after a reply, so the token limit is enforced on what the
    window has already spent: a burst can overshoot by the calls in flight, never for long.
    """

    def __init__(self, rpm: int | None = None, tpm: int | None = None) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self._starts: deque[float] = deque()
        self._spent: deque[tuple[float, int]] = deque()
        self._spent_total = 0
        self._lock = anyio.Lock()

    def _expire(self, now: float) -> None:
        while self._starts and self._starts[0] <= now - WINDOW_S:
            self._starts.popleft()
        while self._spent and self._spent[0][0] <= now - WINDOW_S:
            self._spent_total -= self._spent.popleft()[1]

    def wait_s(self, now: float | None = None) -> float:
        """Seconds until one more call fits the limits (0 when it fits now)."""
        now = time.monotonic() if now is None else now
        self._expire(now)
        wait = 0.0
        if self.rpm and len(self._starts) >= self.rpm:
            wait = self._starts[0] + WINDOW_S - now
        if self.tpm and self._spent_total >= self.tpm:
            wait = max(wait, self._spent[0][0] + WINDOW_S - now)
        return wait

    async def acquire(self) -> None:
        """Return once one more call fits; callers queue in order while they wait."""
        if not self.rpm and not self.tpm:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                wait = self.wait_s(now)
                if wait <= 0:
                    self._starts.append(now)
                    return
                await anyio.sleep(wait)

    def spend(self, tokens: int) -> None:
        """Record the tokens a finished call used."""
        if self.tpm and tokens > 0:
            self._spent.append((time.monotonic(), tokens))
            self._spent_total += tokens
