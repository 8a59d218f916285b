"""Holding teacher spend within `max_cost_usd`, whatever the calls are for (amplifying, judging).

A call's price is known only once it is answered, and many may be in flight, so each kind of work is
priced at the dearest of its kind so far (the dearest of any kind for the next unit): work starts only
while the spend so far, plus every unit in flight at that price, plus one more, fits the limit. A kind
not yet priced goes alone until its first unit is paid for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

import anyio

Verdict = Literal["stop", "wait"] | None


def spend_verdict(
    limit: float | None, spent: float, unit_cost: Mapping[str, float], in_flight: Mapping[str, int]
) -> Verdict:
    """None: another unit may start; "wait": units in flight might use what is left; "stop": even one
    more unit would pass the limit and none is in flight to free anything."""
    if limit is None:
        return None
    flying = {kind: n for kind, n in in_flight.items() if n}
    if any(kind not in unit_cost for kind in flying) or (not unit_cost and flying):
        return "wait"
    dearest = max(unit_cost.values(), default=0.0)
    committed = spent + sum(n * unit_cost[kind] for kind, n in flying.items())
    if committed + dearest <= limit:
        return None
    return "wait" if flying else "stop"


class SpendCap:
    """Concurrent units of one kind of work under a limit: `claim` before a unit, `release` with its cost.

    `spent` reads the client's running cost; `enforced` is False for a teacher LiteLLM has no price for
    (nothing can be held to a budget then: the caller says so)."""

    def __init__(self, limit: float | None, spent: Callable[[], float], enforced: Callable[[], bool]) -> None:
        self.limit = limit
        self.spent = spent
        self.enforced = enforced
        self.unit_cost: dict[str, float] = {}
        self.in_flight: dict[str, int] = {}
        self.refused = 0
        self._changed = anyio.Event()

    async def claim(self, kind: str) -> bool:
        """Wait until a unit of `kind` fits the budget; False (and counted in `refused`) when none can."""
        while True:
            verdict = (
                spend_verdict(self.limit, self.spent(), self.unit_cost, self.in_flight) if self.enforced() else None
            )
            if verdict is None:
                self.in_flight[kind] = self.in_flight.get(kind, 0) + 1
                return True
            if verdict == "stop":
                self.refused += 1
                return False
            await self._changed.wait()

    def release(self, kind: str, cost: float | None) -> None:
        """A unit ended; `cost` is what it paid (None or 0 for cache hits and failures: nothing learned)."""
        self.in_flight[kind] -= 1
        if cost:
            self.unit_cost[kind] = max(self.unit_cost.get(kind, 0.0), cost)
        self._changed.set()
        self._changed = anyio.Event()
