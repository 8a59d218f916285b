"""The job machinery, below any kind: recording an end before freeing the compute slot, the per-job
lock that keeps a job in one process, and the atomic re-queue behind resume_job."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import nanodistill.jobs.run as job_runner
from nanodistill.errors import NanodistillError
from nanodistill.jobs.context import JobContext
from nanodistill.jobs.kind import JobKind
from nanodistill.jobs.slot import compute_slot, hold_job_lock
from nanodistill.kinds import KINDS
from nanodistill.settings import load_settings
from nanodistill.store import jobs as jobs_db
from nanodistill.store.db import Store

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("outcome", "status"), [({"ok": True}, "succeeded"), (None, "failed")])
async def test_a_compute_job_has_ended_before_it_frees_the_slot(
    home: Path, monkeypatch: pytest.MonkeyPatch, outcome: dict[str, Any] | None, status: str
) -> None:
    """Otherwise the job waiting for the slot can start (started_at) before this one's finished_at is
    written, and both show `running` for a moment."""
    settings = load_settings()
    store = await Store.open(settings.db_path)
    try:
        async with store.write() as db:
            job_id = await jobs_db.insert_job(db, "train", {})
        at_release: list[str] = []

        @asynccontextmanager
        async def watched_slot(ctx: JobContext) -> AsyncIterator[None]:
            async with compute_slot(ctx):
                try:
                    yield
                finally:
                    at_release.append((await jobs_db.get_job(store, job_id)).status)

        async def handler(ctx: JobContext) -> dict[str, Any]:
            if outcome is None:
                raise NanodistillError("bad input")
            return outcome

        monkeypatch.setattr(job_runner, "compute_slot", watched_slot)
        monkeypatch.setattr(JobKind, "load_handler", lambda kind: handler)
        ctx = JobContext(store=store, settings=settings, job=await jobs_db.get_job(store, job_id))
        await job_runner.execute(ctx, KINDS["train"])
        assert at_release == [status]
        assert (await jobs_db.get_job(store, job_id)).status == status
    finally:
        await store.close()


def test_a_job_lock_held_by_a_live_process_refuses_a_second_one(tmp_path: Path) -> None:
    """A second process for the same job (a racing resume, a restarted launcher) stops at once."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from nanodistill.jobs.slot import hold_job_lock; "
            "assert hold_job_lock(Path(sys.argv[1]), 'job_x'); print('held', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert not hold_job_lock(tmp_path, "job_x")
        assert hold_job_lock(tmp_path, "job_y")  # other jobs are not affected
    finally:
        holder.kill()
        holder.wait()
    assert hold_job_lock(tmp_path, "job_x")  # the lock dies with its process


async def test_requeue_changes_one_resumable_job_once(store: Store) -> None:
    async with store.write() as db:
        job_id = await jobs_db.insert_job(db, "amplify", {})
        await jobs_db.update_job(db, job_id, status="interrupted")
    async with store.write() as db:
        first = await jobs_db.requeue(db, job_id)
        second = await jobs_db.requeue(db, job_id)
    assert (first, second) == (True, False)
    assert (await jobs_db.get_job(store, job_id)).status == "queued"
    async with store.write() as db:
        await jobs_db.update_job(db, job_id, status="succeeded")
        assert not await jobs_db.requeue(db, job_id)  # a finished job stays finished
