"""Job tools: follow (long-poll), list, cancel and resume durable jobs."""

from __future__ import annotations

import anyio
from mcp.server.mcpserver import Context, MCPServer

from nanodistill.errors import NanodistillError
from nanodistill.jobs import control
from nanodistill.jobs.process import reconcile
from nanodistill.store import jobs as jobs_db
from nanodistill.store.db import now
from nanodistill.store.jobs import JobKindName, JobStatus
from nanodistill.views import JobList, JobView, job_view
from tools._common import ADDITIVE, READ_ONLY, register_tools, runtime

MAX_WAIT_S = 20.0
POLL_S = 0.2


def _changed(before: jobs_db.Job, after: jobs_db.Job) -> bool:
    return (before.status, before.stage, before.progress_done) != (after.status, after.stage, after.progress_done)


async def get_job(job_id: str, ctx: Context, wait_s: float = 0, events_after: int | None = None) -> JobView:
    """The state of a job: status, stage, progress, metrics, cost so far, new events, result.

    This is how long work is followed. Pass `wait_s` (up to 20) to wait for a change before answering,
    and `events_after` (the previous answer's events_cursor) to get only new events. Poll again after
    `next_poll_s` seconds until status is succeeded, failed, cancelled or interrupted.
    """
    if not 0 <= wait_s <= MAX_WAIT_S:
        raise NanodistillError(f"'wait_s' must be between 0 and {MAX_WAIT_S:g} seconds, got {wait_s}.")
    if events_after is not None and events_after < 0:
        raise NanodistillError("'events_after' must be >= 0: pass the events_cursor from the last get_job.")
    store = runtime(ctx).store
    await jobs_db.get_job(store, job_id)
    await reconcile(store, [job_id])
    job = await jobs_db.get_job(store, job_id)
    if wait_s:
        job = await _wait_for_change(ctx, job, events_after, wait_s)
    return await job_view(store, job, events_after)


async def _wait_for_change(ctx: Context, job: jobs_db.Job, events_after: int | None, wait_s: float) -> jobs_db.Job:
    """Return as soon as the job's status, stage or progress moves, or a new event arrives."""
    store = runtime(ctx).store
    seen = events_after if events_after is not None else await jobs_db.last_event_seq(store, job.id)
    deadline = now() + wait_s
    while job.status in jobs_db.ACTIVE and now() < deadline:
        await anyio.sleep(POLL_S)
        await reconcile(store, [job.id])
        latest = await jobs_db.get_job(store, job.id)
        if _changed(job, latest) or await jobs_db.last_event_seq(store, job.id) > seen:
            if latest.progress_total:
                await ctx.report_progress(latest.progress_done, latest.progress_total, latest.stage)
            return latest
    return job


async def list_jobs(
    ctx: Context,
    status: JobStatus | None = None,
    kind: JobKindName | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> JobList:
    """List jobs, newest first, optionally by status or kind (pass next_cursor back as cursor)."""
    if not 1 <= limit <= 200:
        raise NanodistillError(f"'limit' must be between 1 and 200, got {limit}.")
    store = runtime(ctx).store
    await reconcile(store)
    try:
        before = float(cursor) if cursor else None
    except ValueError:
        raise NanodistillError("'cursor' is not one this server returned; pass next_cursor as given.") from None
    found = await jobs_db.list_jobs(store, status, kind, limit + 1, before)
    views = [await job_view(store, job, None) for job in found[:limit]]
    for view in views:
        view.events = []
    next_cursor = repr(found[limit - 1].created_at) if len(found) > limit else None
    return JobList(jobs=views, next_cursor=next_cursor)


async def cancel_job(job_id: str, ctx: Context) -> JobView:
    """Ask a queued or running job to stop. It stops at its next step, keeps what it produced, and ends
    `cancelled` (resume_job continues it later)."""
    store = runtime(ctx).store
    return await job_view(store, await control.cancel_job(store, job_id), None)


async def resume_job(job_id: str, ctx: Context) -> JobView:
    """Restart an interrupted, failed or cancelled job from where it stopped (amplification from the
    examples already stored, training from its last checkpoint)."""
    rt = runtime(ctx)
    return await job_view(rt.store, await control.resume_job(rt.store, rt.settings, job_id), None)


def register(app: MCPServer) -> None:
    register_tools(
        app,
        [
            (get_job, "Follow a job", READ_ONLY),
            (list_jobs, "List jobs", READ_ONLY),
            (cancel_job, "Cancel a job", ADDITIVE),
            (resume_job, "Resume a job", ADDITIVE),
        ],
    )
