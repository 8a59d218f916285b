"""What every job-starting request becomes before anything is written: a checked plan.

A kind's `plan_*` function runs every check a job could fail later, collecting all problems
(`Problems`) so the caller hears them at once, and returns a `Plan`: the kind, its typed
parameters, and the `prepare` step that writes what the job needs (its output dataset, ...)
in the same transaction as the job row. Starting a plan is `jobs.start.start_job`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiosqlite
from pydantic import BaseModel

from nanodistill.errors import NanodistillError
from nanodistill.store.jobs import JobKindName

T = TypeVar("T")
Prepare = Callable[[aiosqlite.Connection, str], Awaitable[dict[str, Any]]]


class Problems:
    """Collects every problem with a request, so the caller hears about all of them at once."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def check(self, fn: Callable[[], T]) -> T | None:
        """`fn()`, or None with its NanodistillError recorded."""
        try:
            return fn()
        except NanodistillError as exc:
            self.add(str(exc))
            return None

    async def check_async(self, fn: Callable[[], Awaitable[T]]) -> T | None:
        try:
            return await fn()
        except NanodistillError as exc:
            self.add(str(exc))
            return None

    def need(self, ok: bool, message: str) -> None:
        if not ok:
            self.add(message)

    def add(self, message: str) -> None:
        text = message.strip().rstrip(".")
        if text not in self.found:
            self.found.append(text)

    def raise_if_any(self, what: str) -> None:
        """One error naming every problem: '<what> cannot start (N problems):' and a bullet each."""
        if self.found:
            n = len(self.found)
            raise NanodistillError(
                f"{what} cannot start ({n} problem{'s' if n > 1 else ''}):\n- " + "\n- ".join(self.found)
            )


@dataclass
class Plan:
    """A job ready to start: its kind, typed parameters, and what to write with its row."""

    kind: JobKindName
    params: BaseModel
    prepare: Prepare | None = None


def stored_params(params: BaseModel) -> dict[str, Any]:
    """Parameters as the job row stores them (JSON); handlers read them back with `Model.model_validate`."""
    return params.model_dump(mode="json")
