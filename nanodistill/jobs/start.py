"""Create a job row and start its process: what every job-starting tool calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite
import anyio

from nanodistill.jobs.process import spawn_job
from nanodistill.settings import Settings
from nanodistill.store import jobs as jobs_db
from nanodistill.store.db import Store

Prepare = Callable[[aiosqlite.Connection, str], Awaitable[dict[str, Any]]]


async def start_job(
    store: Store,
    settings: Settings,
    kind: str,
    params: dict[str, Any],
    *,
    prepare: Prepare | None = None,
) -> jobs_db.Job:
    """Insert the job, then spawn it. `prepare` writes what the job needs (e.g. its output dataset) in the
    same transaction and returns parameters to add, so a failure leaves neither behind."""
    async with store.write() as db:
        job_id = await jobs_db.insert_job(db, kind, params)
        if prepare is not None:
            extra = await prepare(db, job_id)
            await jobs_db.update_job(db, job_id, params={**params, **extra})
        await jobs_db.add_event(db, job_id, "info", f"{kind} job queued")
    await launch(store, settings, job_id, kind)
    return await jobs_db.get_job(store, job_id)


async def launch(store: Store, settings: Settings, job_id: str, kind: str) -> None:
    pid = await anyio.to_thread.run_sync(spawn_job, settings, job_id, kind)
    async with store.write() as db:
        await db.execute("UPDATE jobs SET pid = COALESCE(pid, ?) WHERE id = ? AND status = 'queued'", (pid, job_id))
