"""How many calls a teacher endpoint really serves at once, found while the job runs.

The `concurrency` a user gives is a ceiling. A local server (Ollama, llama.cpp, mlx_lm) answers one
request at a time and queues the rest, so sending the ceiling's worth only makes every call wait
longer, until calls time out behind our own requests. `AdaptiveLimit` is the pure logic (no clock,
no I/O), in the manner of TCP Vegas/BBR and Netflix's concurrency-limits:

- each reply is a sample: its latency against the baseline (the fastest reply yet: what a call
  takes when nothing queues ahead of it) and the replies delivered while it was out.
  Delivery rate x baseline is the parallelism the endpoint showed (BBR's bandwidth-delay product):
  a serial server delivers one reply per baseline however many we send, so its latency rises instead;
- the limit starts at the ceiling (at most `burst`): the first calls go out at once (one call alone
  first cost a whole round trip before the rest could start) and the fastest reply is the baseline
  for now. Every reply of that first burst also waited for the client's own first-request setup and
  for sending the others, so if the burst shows a queue (the latency rise below), the limit comes
  down and, unless a call was already timed alone, the next call goes alone once ours have drained:
  its latency is the baseline from then on, and the samples measured against the old one are dropped
  (a serial server keeps busy with our queue meanwhile; a parallel one rarely shows a queue, and then
  pays one lone round trip);
- additive increase on success while the limit is under `gain` x the parallelism seen (the most
  of recent samples) and the ceiling: +1 per reply until the first drop ("slow start"), then +1 per
  limit's worth of replies; only while demand fills at least half the limit;
- multiplicative decrease on rising latency: when a reply took over `tolerance` x the baseline and
  the limit is over `gain` x the parallelism seen (the latency rose without more replies coming
  back), down to that target, at most `backoff` at a time;
- multiplicative decrease by `backoff` on a drop (timeout, 429, overload), once per epoch: calls sent
  before a decrease cannot decrease the limit again (they were sent under the old limit), as TCP
  reacts once per window.

`EndpointGate` admits calls up to the limit, in order, and keeps each call's *served clock*: a call's
timeout starts only once fewer of our own calls are ahead of it than the endpoint serves at once, so
time spent queued behind our own requests never counts against it. Calls sent within `SAME_TIME_S` of
each other may reach the server in either order, so each counts as ahead of the other.
`TailTracker` says when a call is slow enough, against its peers, to be worth a duplicate (a hedge).
"""

from __future__ import annotations

import bisect
import math
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from itertools import count

import anyio

SAME_TIME_S = 0.1


class Outcome(Enum):
    """What a finished call tells the limiter."""

    SUCCESS = "success"  # a clean reply: a sample of latency and delivery rate
    REPLIED = "replied"  # a reply, but its latency says nothing (a duplicate was sent for it)
    DROP = "drop"  # timeout, 429, overload: the endpoint has too much
    IGNORE = "ignore"  # says nothing about load (a bad request, a cancel)


@dataclass
class AdaptiveLimit:
    """The limit's arithmetic. `slots` is what the gate admits: the limit, floored, within [1, ceiling];
    `limit` 0 means the first burst's size, min(ceiling, burst)."""

    ceiling: int
    gain: float = 2.0
    burst: int = 64
    tolerance: float = 1.5
    backoff: float = 0.5
    parallel_window: int = 50
    limit: float = 0.0
    epoch: int = 0
    slow_start: bool = True
    decreases: int = 0
    baseline_s: float | None = None
    measured_alone: bool = False  # a call that was out alone has been timed: no remeasure needed
    remeasure: bool = False  # the next call goes alone, once ours have drained, to measure the baseline
    _parallel: deque[float] = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        if self.ceiling < 1:
            raise ValueError(f"the concurrency ceiling must be at least 1, got {self.ceiling}")
        self._parallel = deque(maxlen=self.parallel_window)
        if self.limit <= 0:
            self.limit = float(min(self.ceiling, self.burst))

    @property
    def slots(self) -> int:
        if self.remeasure:
            return 1
        return max(1, min(self.ceiling, int(self.limit + 1e-6)))  # 2 x 0.99999... is 2

    @property
    def parallelism(self) -> int:
        """Calls the endpoint has been seen to serve at once (1 until shown more)."""
        return max(1, int(max(self._parallel, default=1.0) + 0.5))

    def raise_ceiling(self, ceiling: int) -> None:
        """Another client of the same endpoint allows more; the limit still has to earn it."""
        self.ceiling = max(self.ceiling, ceiling)

    def on_success(
        self, latency_s: float, *, delivered: int, span_s: float, in_flight: int, epoch: int, alone: bool = False
    ) -> None:
        """A clean reply after `latency_s`, sent in `epoch` while `in_flight` calls (itself included)
        were out; `delivered` replies (itself included) came back over the last `span_s` seconds
        (from the reply before it was sent). `alone`: no other call was out at any time while it was."""
        if alone:
            self._measured_alone(latency_s)
        base = latency_s if self.baseline_s is None else min(self.baseline_s, latency_s)
        self.baseline_s = base
        if span_s > 0 and base > 0:
            self._parallel.append(delivered / max(span_s, latency_s) * base)
        target = self.gain * self.parallelism
        if self.limit > target and latency_s > self.tolerance * base:
            self.limit = max(1.0, target, self.limit * self.backoff)
            self.decreases += 1
            self.remeasure = not self.measured_alone
            return
        if epoch != self.epoch or in_flight * 2 < self.limit:
            return  # stale news, or too little demand to learn anything about a higher limit
        step = 1.0 if self.slow_start else 1.0 / self.limit
        self.limit = max(self.limit, min(float(self.ceiling), target, self.limit + step))

    def _measured_alone(self, latency_s: float) -> None:
        """A lone call's latency is the endpoint's own. The one asked for by `remeasure` replaces the
        first burst's baseline, and the samples measured against that are dropped; otherwise the
        samples stay (against a server that answers at once, our own overhead of sending a burst is
        most of each call's latency, and the lone call would make the endpoint look serial)."""
        if self.remeasure:
            self._parallel.clear()
            self.baseline_s = latency_s
            self.remeasure = False
        self.measured_alone = True

    def on_drop(self, *, epoch: int) -> None:
        if epoch == self.epoch:
            self.limit = max(1.0, self.limit * self.backoff)
            self.slow_start = False
            self.epoch += 1
            self.decreases += 1


@dataclass(eq=False)
class Slot:
    """One admitted call: when it got in, how many were out with it, and its served clock."""

    seq: int
    epoch: int
    in_flight: int
    admitted_at: float
    delivered_before: int
    last_reply_at: float  # the endpoint's latest reply before this call was sent
    alone: bool = True  # no other call of ours was out at any time while this one was
    served_at: float | None = None
    on_served: Callable[[float], None] | None = None

    def start_clock(self, now: float) -> None:
        if self.served_at is None:
            self.served_at = now
            if self.on_served is not None:
                self.on_served(now)

    def stop_clock(self) -> None:
        """Not served after all: a call sent at the same moment may reach the endpoint first."""
        if self.served_at is not None:
            self.served_at = None
            if self.on_served is not None:
                self.on_served(math.inf)

    def watch_clock(self, callback: Callable[[float], None]) -> None:
        """Call `callback(start)` when the served clock starts (now, if it already has), and
        `callback(inf)` when it is stopped again."""
        self.on_served = callback
        if self.served_at is not None:
            callback(self.served_at)


class EndpointGate:
    """Admits calls to one teacher endpoint up to its adaptive limit, first come first served."""

    def __init__(self, ceiling: int, *, same_time_s: float = SAME_TIME_S) -> None:
        self.limit = AdaptiveLimit(ceiling)
        self.same_time_s = same_time_s
        self._in_flight: dict[int, Slot] = {}
        self._waiters: deque[anyio.Event] = deque()
        self._reserved = 0
        self._seq = count()
        self._delivered = 0
        self._last_reply_at: float | None = None

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def acquire(self) -> Slot:
        """Wait for a slot; the caller must `release` it."""
        if self._free() > 0 and not self._waiters:
            return self._admit()
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():  # woken with a slot reserved for us, then cancelled: pass it on
                self._reserved -= 1
                self._wake()
            else:
                self._waiters.remove(event)
            raise
        self._reserved -= 1
        return self._admit()

    def release(self, slot: Slot, outcome: Outcome) -> None:
        del self._in_flight[slot.seq]
        now = anyio.current_time()
        if outcome in (Outcome.SUCCESS, Outcome.REPLIED):
            self._delivered += 1
            self._last_reply_at = now
        if outcome is Outcome.SUCCESS:
            self.limit.on_success(
                now - slot.admitted_at,
                delivered=self._delivered - slot.delivered_before,
                span_s=now - slot.last_reply_at,
                in_flight=slot.in_flight,
                epoch=slot.epoch,
                alone=slot.alone,
            )
        elif outcome is Outcome.DROP:
            self.limit.on_drop(epoch=slot.epoch)
        self._wake()
        self._start_clocks()

    def _free(self) -> int:
        return self.limit.slots - len(self._in_flight) - self._reserved

    def _admit(self) -> Slot:
        seq = next(self._seq)
        now = anyio.current_time()
        last = now if self._last_reply_at is None else self._last_reply_at
        slot = Slot(seq, self.limit.epoch, len(self._in_flight) + 1, now, self._delivered, last)
        for other in self._in_flight.values():
            other.alone = slot.alone = False
        self._in_flight[seq] = slot
        self._start_clocks()
        return slot

    def _wake(self) -> None:
        while self._waiters and self._free() > 0:
            self._reserved += 1
            self._waiters.popleft().set()

    def _start_clocks(self) -> None:
        """Start the served clock of every call with fewer of ours ahead of it than the endpoint
        serves at once (1 until shown more: a call queued behind our own requests at a serial
        server is not being served yet). A clock started under `same_time_s` ago stops again when
        calls admitted since put too many ahead of it: the first call of a burst, alone when it
        was admitted, may reach a serial server after the others. Slots are in admission order."""
        serving = min(self.limit.parallelism, self.limit.slots)
        slots = list(self._in_flight.values())
        admitted = [slot.admitted_at for slot in slots]
        now = anyio.current_time()
        for slot in slots:
            ahead = bisect.bisect_right(admitted, slot.admitted_at + self.same_time_s) - 1
            if ahead < serving:
                slot.start_clock(now)
            elif slot.served_at is not None and now - slot.served_at < self.same_time_s:
                slot.stop_clock()


@dataclass
class TailTracker:
    """When a call is slow enough, against its peers' served times, to send a duplicate of it."""

    factor: float = 3.0
    floor_s: float = 0.5
    min_samples: int = 3
    window: int = 200
    _served: deque[float] = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        self._served = deque(maxlen=self.window)

    def add(self, served_s: float) -> None:
        self._served.append(served_s)

    def p95(self) -> float | None:
        if len(self._served) < self.min_samples:
            return None
        ordered = sorted(self._served)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]

    def hedge_after_s(self) -> float | None:
        """Served seconds after which a call is hedged; None while too few peers have finished."""
        p95 = self.p95()
        return None if p95 is None else max(self.floor_s, self.factor * p95)


_GATES: weakref.WeakValueDictionary[tuple[str, str], EndpointGate] = weakref.WeakValueDictionary()


def endpoint_gate(model: str, api_base: str | None, ceiling: int) -> EndpointGate:
    """The one gate of this process for a teacher endpoint (model + api_base): every client of the
    same endpoint learns and obeys the same limit."""
    key = (model, (api_base or "").rstrip("/"))
    gate = _GATES.get(key)
    if gate is None:
        gate = EndpointGate(ceiling)
        _GATES[key] = gate
    else:
        gate.limit.raise_ceiling(ceiling)
    return gate
