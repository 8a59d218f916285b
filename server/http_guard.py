"""Slow clients cannot starve the HTTP server: read deadlines and a connection cap.

uvicorn times out only idle kept-alive connections: one that sends a request's headers a byte at a
time (slowloris), or opens and sends nothing, holds a file descriptor forever, and a thousand of
them exhaust the open-file limit so every later client waits. Here each connection must deliver a
request's headers within `header_timeout_s` of starting to wait for them (trickling bytes does not
extend it) and its body within `body_timeout_s`; the number of connections stays below the
open-file limit, and a newcomer over the cap closes the connection that has waited longest for
headers (an attacker's, never one whose request is being answered).
"""

from __future__ import annotations

import asyncio
import os
import resource
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

from uvicorn.protocols.http.h11_impl import H11Protocol

Phase = Literal["headers", "body", "busy"]

TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
ACCEPT_BATCH = 128
"""Listen backlog, which asyncio also uses as the most connections accepted at once: kept below the
descriptors held in reserve, so a burst cannot reach the open-file limit before the cap applies."""


def open_descriptors() -> int:
    """Descriptors this process holds now (0 where /proc or /dev/fd cannot tell)."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(folder))
        except OSError:
            continue
    return 0


def connection_cap() -> int:
    """Connections allowed at once: the soft open-file limit less what the server holds at start and a
    reserve (a quarter of the limit, 32 to 256) for what it opens later (the database, job pipes,
    model files, lazily imported modules) and for a burst of accepts still on their way to the cap."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 10_000
    reserve = min(2 * ACCEPT_BATCH, max(32, soft // 4))
    return max(8, min(10_000, soft - open_descriptors() - reserve))


@dataclass
class ConnectionGuard:
    """The shared state of one server's connections."""

    cap: int
    header_timeout_s: float
    body_timeout_s: float
    open: set[GuardedH11Protocol] = field(default_factory=set)
    waiting: OrderedDict[GuardedH11Protocol, None] = field(default_factory=OrderedDict)
    evicted: int = 0
    timed_out: int = 0

    def admit(self, newcomer: GuardedH11Protocol) -> None:
        """Count `newcomer`; over the cap, close the longest wait for headers (else the newcomer)."""
        self.open.add(newcomer)
        if len(self.open) <= self.cap:
            return
        victim = next(iter(self.waiting), newcomer)
        self.evicted += 1
        victim.drop()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with per-phase read deadlines, under a `ConnectionGuard`."""

    guard: ConnectionGuard

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._phase: Phase | None = None
        self._deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._track()
        self.guard.admit(self)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:
        self._set_phase(None)
        self.guard.open.discard(self)
        super().connection_lost(exc)

    def drop(self) -> None:
        """Close at once, freeing the descriptor (an evicted connection gets no reply)."""
        self._set_phase(None)
        self.guard.open.discard(self)
        self.transport.abort()

    def _current_phase(self) -> Phase:
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return "headers"
        return "body" if cycle.more_body else "busy"

    def _track(self) -> None:
        if not self.transport.is_closing():
            self._set_phase(self._current_phase())

    def _set_phase(self, phase: Phase | None) -> None:
        """Start the deadline of a new phase; staying in a phase (more bytes) keeps its deadline."""
        if phase == self._phase:
            return
        self._phase = phase
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.guard.waiting.pop(self, None)
        if phase == "headers":
            self.guard.waiting[self] = None
            self._deadline = self.loop.call_later(self.guard.header_timeout_s, self._time_out)
        elif phase == "body":
            self._deadline = self.loop.call_later(self.guard.body_timeout_s, self._time_out)

    def _time_out(self) -> None:
        """Say 408 when no response has begun on this request, then close."""
        self._deadline = None
        self.guard.timed_out += 1
        if self._phase == "headers" and not self.transport.is_closing():
            self.transport.write(TIMEOUT_RESPONSE)
        self._set_phase(None)
        self.transport.close()


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedH11Protocol]:
    """A protocol class bound to `guard`, for `uvicorn.Config(http=...)`."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": guard})
