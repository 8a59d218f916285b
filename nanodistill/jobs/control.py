"""Cancel and resume: the state changes a client asks of a job, each one atomic in the store."""

from __future__ import annotations

from nanodistill.errors import NanodistillError
from nanodistill.jobs.process import reconcile, signal_job
from nanodistill.jobs.start import launch
from nanodistill.settings import Settings
from nanodistill.store import jobs as jobs_db
from nanodistill.store.db import Store


async def cancel_job(store: Store, job_id: str) -> jobs_db.Job:
    """Ask a queued or running job (and its active stages) to stop; it keeps what it produced."""
    await reconcile(store, [job_id])
    job = await jobs_db.get_job(store, job_id)
    if job.status not in jobs_db.ACTIVE:
        raise NanodistillError(
            f"job {job_id} already ended ({job.status}); there is nothing to cancel."
            + (" resume_job continues it." if job.status in jobs_db.RESUMABLE else "")
        )
    async with store.write() as db:
        await jobs_db.request_cancel(db, job_id)
        await jobs_db.add_event(db, job_id, "info", "cancel requested")
    if job.status == "running":
        # Only a running job has its SIGTERM handler in place; a queued one may still be starting, and a
        # signal then would kill it outright (ending `interrupted`). It reads the flag when it starts.
        signal_job(job.pid)
    return await jobs_db.get_job(store, job_id)


async def resume_job(store: Store, settings: Settings, job_id: str) -> jobs_db.Job:
    """Restart an ended job from where it stopped. The status check and the change to `queued` are one
    statement, so of concurrent resumes exactly one starts a process."""
    await reconcile(store, [job_id])
    job = await jobs_db.get_job(store, job_id)
    if job.parent_id:
        raise NanodistillError(f"job {job_id} is a stage of job {job.parent_id}; resume that one instead.")
    async with store.write() as db:
        requeued = await jobs_db.requeue(db, job_id)
        if requeued:
            await jobs_db.add_event(db, job_id, "info", "resume requested")
    if not requeued:
        job = await jobs_db.get_job(store, job_id)
        hint = (
            "it is already running or queued (another resume may have started it); follow it with get_job"
            if job.status in jobs_db.ACTIVE
            else "it finished successfully; start a new job instead"
        )
        raise NanodistillError(f"job {job_id} is {job.status} and cannot be resumed: {hint}.")
    await launch(store, settings, job_id, job.kind)
    return await jobs_db.get_job(store, job_id)
