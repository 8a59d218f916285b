"""Resuming a killed job while others look at it: what benchmarks/crash_soak.py found, kept as tests.

A job killed with `kill -9` has a stale heartbeat. Between its re-queue and its new process's first
heartbeat it has no pid either, and a reconcile running then (a second resume, a get_job on another
server) took it for dead: it was marked `interrupted` again, a second resume was accepted, and a second
process was started for it.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

import nanodistill.jobs.start as job_start
from nanodistill.errors import NanodistillError
from nanodistill.jobs.control import resume_job
from nanodistill.jobs.process import STALE_AFTER_S, reconcile
from nanodistill.settings import Settings, load_settings
from nanodistill.store import jobs as jobs_db
from nanodistill.store.db import Store, now

pytestmark = pytest.mark.anyio


async def killed_job(store: Store) -> str:
    """An amplify job whose process died long enough ago to be marked `interrupted`."""
    async with store.write() as db:
        job_id = await jobs_db.insert_job(db, "amplify", {})
        stale = now() - 3 * STALE_AFTER_S
        await jobs_db.update_job(db, job_id, status="running", pid=None, started_at=stale, heartbeat_at=stale)
    assert await reconcile(store, [job_id]) == [job_id]
    return job_id


async def test_a_requeued_job_is_not_taken_for_dead_before_its_process_starts(store: Store) -> None:
    job_id = await killed_job(store)
    async with store.write() as db:
        assert await jobs_db.requeue(db, job_id)
    assert await reconcile(store, [job_id]) == []
    assert (await jobs_db.get_job(store, job_id)).status == "queued"


async def test_concurrent_resumes_during_a_slow_start_launch_one_process(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process start takes a while (a loaded machine); the resumes arriving meanwhile are refused."""
    spawned: list[str] = []

    def slow_spawn(settings: Settings, job_id: str, kind: str) -> int:
        time.sleep(0.3)
        spawned.append(job_id)
        return os.getpid()  # a live pid, as the started process's would be

    monkeypatch.setattr(job_start, "spawn_job", slow_spawn)
    job_id = await killed_job(store)
    settings = load_settings()

    async def resume_after(delay: float) -> jobs_db.Job:
        await asyncio.sleep(delay)
        return await resume_job(store, settings, job_id)

    outcomes = await asyncio.gather(*(resume_after(0.05 * i) for i in range(5)), return_exceptions=True)
    refused = [str(o) for o in outcomes if isinstance(o, NanodistillError)]
    assert len(refused) == 4, outcomes
    assert all("cannot be resumed" in text for text in refused), refused
    assert spawned == [job_id]
