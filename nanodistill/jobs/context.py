"""What a running job can do: report progress, events, metrics and cost, and notice a cancel."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import anyio
from pydantic import BaseModel

from nanodistill.settings import Settings
from nanodistill.store import jobs as jobs_db
from nanodistill.store.db import Store

log = logging.getLogger("nanodistill.job")
P = TypeVar("P", bound=BaseModel)


class JobCancelled(Exception):
    """Raised inside a job when a cancel was asked for; the runner ends the job `cancelled`."""


@dataclass
class JobContext:
    store: Store
    settings: Settings
    job: jobs_db.Job
    cancel: anyio.Event = field(default_factory=anyio.Event)
    parent: JobContext | None = None
    span: tuple[float, float] = (0.0, 100.0)

    @property
    def id(self) -> str:
        return self.job.id

    def params_as(self, model: type[P]) -> P:
        """The job's stored parameters as their kind's typed record."""
        return model.model_validate(self.job.params)

    @property
    def state(self) -> dict[str, Any]:
        """What earlier attempts of this job saved for a resume."""
        return self.job.state

    @property
    def artifacts(self) -> Path:
        return self.settings.artifact_dir("jobs", self.job.id)

    def should_stop(self) -> bool:
        return self.cancel.is_set()

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise JobCancelled

    async def event(self, level: str, message: str, data: dict[str, Any] | None = None) -> None:
        log.info("%s: %s %s", level, message, data or "")
        async with self.store.write() as db:
            await jobs_db.add_event(db, self.id, level, message, data)

    async def progress(
        self, done: float, total: float | None, stage: str | None = None, cost_usd: float | None = None
    ) -> None:
        """Record progress (and the cost so far, when given, in the same write)."""
        fields: dict[str, Any] = {"progress_done": done, "progress_total": total}
        if stage is not None:
            fields["stage"] = stage
        if cost_usd is not None:
            fields["cost_usd"] = cost_usd
        async with self.store.write() as db:
            await jobs_db.update_job(db, self.id, **fields)
            if cost_usd is not None:
                await self._roll_up_cost(db)
        if self.parent is not None and total:
            start, width = self.parent.span
            await self.parent.progress(start + width * min(done / total, 1.0), 100.0)

    async def stage(self, stage: str, message: str | None = None) -> None:
        async with self.store.write() as db:
            await jobs_db.update_job(db, self.id, stage=stage)
            await jobs_db.add_event(db, self.id, "info", message or f"stage: {stage}", {"stage": stage})

    async def metrics(self, update: dict[str, Any]) -> None:
        async with self.store.write() as db:
            await jobs_db.merge_json(db, self.id, "metrics", update)

    async def save_state(self, update: dict[str, Any]) -> None:
        self.job.state.update(update)
        async with self.store.write() as db:
            await jobs_db.merge_json(db, self.id, "state", update)

    async def set_cost(self, cost_usd: float) -> None:
        async with self.store.write() as db:
            await jobs_db.update_job(db, self.id, cost_usd=cost_usd)
            await self._roll_up_cost(db)

    async def _roll_up_cost(self, db: aiosqlite.Connection) -> None:
        if self.parent is not None:
            await jobs_db.roll_up_cost(db, self.parent.id)
