"""Running a job in its process: mark it running, heartbeat, watch for a cancel (flag in SQLite or
SIGTERM), take the compute slot for compute-heavy kinds, run the kind's handler, record how it ended.

The process entry point (`python -m nanodistill.worker JOB_ID KIND`) looks the kind up in the table
of kinds and calls `run_job`; multi-stage jobs run their stages here with `run_child`.
"""

from __future__ import annotations

import logging
import os
import signal
import traceback
from typing import Any

import anyio
from pydantic import BaseModel

from nanodistill.errors import NanodistillError
from nanodistill.jobs.context import JobCancelled, JobContext
from nanodistill.jobs.kind import Handler, JobKind
from nanodistill.jobs.plan import stored_params
from nanodistill.jobs.process import HEARTBEAT_S
from nanodistill.jobs.slot import compute_slot, hold_job_lock
from nanodistill.settings import load_settings
from nanodistill.store import jobs as jobs_db
from nanodistill.store.db import Store, checkpoint, now
from nanodistill.store.disk import disk_error, failed_folder, is_disk_error


async def _heartbeat(ctx: JobContext) -> None:
    """Beat for the job and the stages it runs in-process; a cancel asked of either stops both. A beat
    that meets a full disk is skipped: raising would kill the job process with nothing recorded, while
    the job's own writes meet the same disk and end it `failed`, saying why."""
    while True:
        try:
            async with ctx.store.write() as db:
                await jobs_db.beat(db, ctx.id, now())
        except Exception as exc:
            if not is_disk_error(exc):
                raise
            logging.warning("job %s: heartbeat skipped: %s", ctx.id, exc)
        if await jobs_db.cancel_asked(ctx.store, ctx.id):
            ctx.cancel.set()
        await anyio.sleep(HEARTBEAT_S)


async def _signals(ctx: JobContext) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            ctx.cancel.set()


async def _finish(ctx: JobContext, status: str, **fields: Any) -> None:
    """Record how the job ended. On a full disk the WAL is emptied and the write tried once more: the end
    is small, and a job whose end is lost would say `running` until found dead, with no reason."""
    with anyio.CancelScope(shield=True):
        try:
            await _write_end(ctx, status, fields)
        except Exception as exc:
            if not is_disk_error(exc):
                raise
            await checkpoint(ctx.store)
            await _write_end(ctx, status, fields)


async def _write_end(ctx: JobContext, status: str, fields: dict[str, Any]) -> None:
    async with ctx.store.write() as db:
        await jobs_db.update_job(db, ctx.id, status=status, finished_at=now(), pid=None, **fields)
        message = f"job {status}" + (f": {fields['error']}" if fields.get("error") else "")
        await jobs_db.add_event(db, ctx.id, "error" if status == "failed" else "info", message)


async def run_job(job_id: str, kind: JobKind) -> int:
    settings = load_settings()
    if not hold_job_lock(settings.home, job_id):
        logging.error("job %s already runs in another process; this one stops", job_id)
        return 1
    store = await Store.open(settings.db_path)
    try:
        job = await jobs_db.get_job(store, job_id)
        if job.status != "queued":
            logging.error("job %s is %s, not queued; nothing to do", job_id, job.status)
            return 1
        async with store.write() as db:
            await jobs_db.update_job(
                db, job_id, pid=os.getpid(), heartbeat_at=now(), attempts=job.attempts + 1, error=None
            )
        ctx = JobContext(store=store, settings=settings, job=await jobs_db.get_job(store, job_id))
        if kind.mlx:
            await _report_blas(ctx)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_heartbeat, ctx)
            tg.start_soon(_signals, ctx)
            await execute(ctx, kind)
            tg.cancel_scope.cancel()
        return 0
    finally:
        await store.close()


async def _report_blas(ctx: JobContext) -> None:
    """Say once, in the job's events, which BLAS this MLX process runs on and why."""
    from nanodistill.platform.blas import blas_status

    status = blas_status(ctx.settings)
    if status.active:
        await ctx.event("info", f"BLAS: fast path active ({status.library}, {status.threads} thread(s))")
    elif status.applicable:
        await ctx.event(
            "warning",
            f"BLAS: stock mlx-cpu reference BLAS, training will be slow: {status.fallback_reason}",
            {"fallback_reason": status.fallback_reason},
        )


async def execute(ctx: JobContext, kind: JobKind) -> tuple[str, dict[str, Any]]:
    """Run a handler (in the compute slot when its kind needs one), map how it ended to a status and
    record it. The end is recorded before the slot is released, so the job that waited for the slot
    never starts while this one still shows `running`."""
    handler = kind.load_handler()
    if not kind.compute:
        return await _record(ctx, await _outcome(ctx, handler))
    try:
        async with compute_slot(ctx):
            return await _record(ctx, await _outcome(ctx, handler))
    except Exception as exc:  # raised while taking the slot (a cancel while waiting, an OS error)
        return await _record(ctx, _failure(ctx, exc))


async def _record(ctx: JobContext, outcome: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    status, fields = outcome
    await _finish(ctx, status, **fields)
    return outcome


async def _outcome(ctx: JobContext, handler: Handler) -> tuple[str, dict[str, Any]]:
    try:
        await _mark_running(ctx)
        result = await handler(ctx)
    except Exception as exc:
        return _failure(ctx, exc)
    if ctx.should_stop() and result.get("stopped") == "cancelled":
        return "cancelled", {"result": result, "note": "cancelled on request; what was produced is kept"}
    return "succeeded", {"result": result, "note": result.get("note")}


def _failure(ctx: JobContext, exc: Exception) -> tuple[str, dict[str, Any]]:
    if isinstance(exc, JobCancelled):
        return "cancelled", {"note": "cancelled on request; what was produced so far is kept"}
    if isinstance(exc, NanodistillError):
        return "failed", {"error": str(exc)}
    if is_disk_error(exc):  # a full disk or read-only folder is the user's to fix, not a crash
        folder = failed_folder(exc, ctx.settings.home)
        return "failed", {"error": str(disk_error(exc, folder, "resume_job to continue where it stopped"))}
    logging.error("job %s crashed:\n%s", ctx.id, traceback.format_exc())
    return "failed", {"error": f"internal error ({type(exc).__name__}: {exc}); see the job log"}


async def run_child(parent: JobContext, stage: str, kind: JobKind, params: BaseModel, announce: str) -> dict[str, Any]:
    """Run one stage of a multi-stage job in this process, as a child job row of its own.

    A stage that already succeeded (in an earlier attempt) is skipped, said so, and its result
    returned; one that did not is announced (`announce`) and run again, resuming from what it stored.
    A failed or cancelled stage ends the parent the same way.
    """
    child_id = parent.state.get("children", {}).get(stage)
    child = await jobs_db.find_job(parent.store, child_id) if child_id else None
    if child is not None and child.status == "succeeded":
        await parent.event("info", f"{stage}: already done in an earlier attempt (job {child.id}), skipped")
        return child.result or {}
    await parent.stage(stage, announce)
    async with parent.store.write() as db:
        if child is None:
            child_id = await jobs_db.insert_job(db, kind.name, stored_params(params), parent_id=parent.id)
        assert child_id is not None
        await jobs_db.update_job(
            db,
            child_id,
            status="queued",
            pid=os.getpid(),
            heartbeat_at=now(),
            cancel_requested=0,
            error=None,
            finished_at=None,
            attempts=(child.attempts if child else 0) + 1,
        )
    await parent.save_state({"children": {**parent.state.get("children", {}), stage: child_id}})
    ctx = JobContext(
        store=parent.store,
        settings=parent.settings,
        job=await jobs_db.get_job(parent.store, child_id),
        cancel=parent.cancel,
        parent=parent,
    )
    status, fields = await execute(ctx, kind)
    if status == "cancelled":
        raise JobCancelled
    if status == "failed":
        raise NanodistillError(f"the {stage} stage failed: {fields['error']}")
    result: dict[str, Any] = fields["result"]
    return result


async def _mark_running(ctx: JobContext) -> None:
    async with ctx.store.write() as db:
        await jobs_db.update_job(db, ctx.id, status="running", started_at=now(), stage="starting")
        await jobs_db.add_event(db, ctx.id, "info", f"{ctx.job.kind} job started (attempt {ctx.job.attempts})")
