"""OS file locks: the compute slot, so two trainings never fight for one machine, and each job's own
lock, so a job never runs in two processes.

A lock dies with its process, so a killed job never leaves one taken.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from nanodistill.jobs.context import JobContext

POLL_S = 0.5
_held: list[int] = []


@asynccontextmanager
async def compute_slot(ctx: JobContext) -> AsyncIterator[None]:
    path = ctx.settings.home / "compute.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not announced:
                    holder = path.read_text().strip() or "another job"
                    await ctx.stage("waiting for compute slot", f"queued: the compute slot is held by {holder}")
                    announced = True
                ctx.check_cancel()
                await anyio.sleep(POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, ctx.id.encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def hold_job_lock(home: Path, job_id: str) -> bool:
    """Take this job's own lock for the rest of the process's life; False when another live process
    holds it (so a job never runs in two processes at once, however it was started)."""
    folder = home / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{job_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _held.append(fd)  # kept open: the lock lasts until the process exits
    return True
