"""Create a job row from a checked plan and start its process: what every job-starting surface calls."""

from __future__ import annotations

import anyio

from nanodistill.jobs.plan import Plan, stored_params
from nanodistill.jobs.process import spawn_job
from nanodistill.settings import Settings
from nanodistill.store import jobs as jobs_db
from nanodistill.store.db import Store


async def start_job(store: Store, settings: Settings, plan: Plan) -> jobs_db.Job:
    """Insert the job, then spawn it. The plan's `prepare` writes what the job needs (e.g. its output
    dataset) in the same transaction and returns parameters to add, so a failure leaves neither behind."""
    params = stored_params(plan.params)
    async with store.write() as db:
        job_id = await jobs_db.insert_job(db, plan.kind, params)
        if plan.prepare is not None:
            extra = await plan.prepare(db, job_id)
            await jobs_db.update_job(db, job_id, params={**params, **extra})
        await jobs_db.add_event(db, job_id, "info", f"{plan.kind} job queued")
    await launch(store, settings, job_id, plan.kind)
    return await jobs_db.get_job(store, job_id)


async def launch(store: Store, settings: Settings, job_id: str, kind: str) -> None:
    pid = await anyio.to_thread.run_sync(spawn_job, settings, job_id, kind)
    async with store.write() as db:
        await jobs_db.record_launch(db, job_id, pid)
