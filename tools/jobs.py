"""Job tools: follow (long-poll), list, cancel and resume durable jobs."""

from __future__ import annotations

from typing import Any, Literal

import anyio
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from nanodistill.errors import NanodistillError
from nanodistill.jobs.process import reconcile, signal_job
from nanodistill.jobs.start import launch
from nanodistill.store import jobs as jobs_db
from nanodistill.store.db import Store, now
from tools._common import ADDITIVE, READ_ONLY, register_tools, runtime

MAX_WAIT_S = 20.0
POLL_S = 0.2
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]


class JobEvent(BaseModel):
    seq: int
    at: float
    level: str
    message: str
    data: dict[str, Any] = Field(default_factory=dict)


class Progress(BaseModel):
    done: float
    total: float | None
    fraction: float | None


class ChildJob(BaseModel):
    id: str
    kind: str
    status: str
    stage: str | None


class JobView(BaseModel):
    id: str
    kind: str
    status: JobStatus
    stage: str | None
    progress: Progress
    metrics: dict[str, Any]
    cost_usd: float
    result: dict[str, Any] | None = None
    error: str | None = None
    note: str | None = None
    parent_id: str | None = None
    children: list[ChildJob] = Field(default_factory=list)
    attempts: int
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    events: list[JobEvent] = Field(default_factory=list, description="Events after events_after, oldest first.")
    events_cursor: int = Field(description="Pass as events_after on the next get_job to get only newer events.")
    next_poll_s: float | None = Field(description="When to call get_job again; null once the job has ended.")


class JobList(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None = None


async def job_view(store: Store, job: jobs_db.Job, events_after: int | None) -> JobView:
    after = events_after if events_after is not None else 0
    events = await jobs_db.events_after(store, job.id, after)
    cursor = events[-1].seq if events else max(after, 0)
    total = job.progress_total
    fraction = min(job.progress_done / total, 1.0) if total else None
    active = job.status in jobs_db.ACTIVE
    children = await jobs_db.child_jobs(store, job.id)
    return JobView(
        id=job.id,
        kind=job.kind,
        status=job.status,  # type: ignore[arg-type]
        stage=job.stage,
        progress=Progress(done=job.progress_done, total=total, fraction=fraction),
        metrics=job.metrics,
        cost_usd=round(job.cost_usd, 6),
        result=job.result,
        error=job.error,
        note=job.note,
        parent_id=job.parent_id,
        children=[ChildJob(id=c.id, kind=c.kind, status=c.status, stage=c.stage) for c in children],
        attempts=job.attempts,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        events=[JobEvent(seq=e.seq, at=e.at, level=e.level, message=e.message, data=e.data) for e in events],
        events_cursor=cursor,
        next_poll_s=(2.0 if job.status == "running" else 5.0) if active else None,
    )


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
    kind: Literal["amplify", "train", "evaluate", "export", "distill"] | None = None,
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
    await reconcile(store, [job_id])
    job = await jobs_db.get_job(store, job_id)
    if job.status not in jobs_db.ACTIVE:
        raise NanodistillError(
            f"job {job_id} already ended ({job.status}); there is nothing to cancel."
            + (" resume_job continues it." if job.status in jobs_db.RESUMABLE else "")
        )
    async with store.write() as db:
        await jobs_db.update_job(db, job_id, cancel_requested=1)
        await jobs_db.add_event(db, job_id, "info", "cancel requested")
    for child in await jobs_db.child_jobs(store, job_id):
        if child.status in jobs_db.ACTIVE:
            async with store.write() as db:
                await jobs_db.update_job(db, child.id, cancel_requested=1)
    if job.status == "running":
        # Only a running job has its SIGTERM handler in place; a queued one may still be starting, and a
        # signal then would kill it outright (ending `interrupted`). It reads the flag when it starts.
        signal_job(job.pid)
    return await job_view(store, await jobs_db.get_job(store, job_id), None)


async def resume_job(job_id: str, ctx: Context) -> JobView:
    """Restart an interrupted, failed or cancelled job from where it stopped (amplification from the
    examples already stored, training from its last checkpoint)."""
    rt = runtime(ctx)
    await reconcile(rt.store, [job_id])
    job = await jobs_db.get_job(rt.store, job_id)
    if job.parent_id:
        raise NanodistillError(f"job {job_id} is a stage of job {job.parent_id}; resume that one instead.")
    if job.status not in jobs_db.RESUMABLE:
        hint = (
            "it is still active; follow it with get_job"
            if job.status in jobs_db.ACTIVE
            else ("it finished successfully; start a new job instead")
        )
        raise NanodistillError(f"job {job_id} is {job.status} and cannot be resumed: {hint}.")
    async with rt.store.write() as db:
        await jobs_db.update_job(
            db, job_id, status="queued", cancel_requested=0, error=None, note=None, finished_at=None, pid=None
        )
        await jobs_db.add_event(db, job_id, "info", "resume requested")
    await launch(rt.store, rt.settings, job_id, job.kind)
    return await job_view(rt.store, await jobs_db.get_job(rt.store, job_id), None)


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
