"""The compute slot: an OS file lock so two trainings never fight for one machine.

The lock dies with its process, so a killed job never leaves the slot taken.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from nanodistill.jobs.context import JobContext

POLL_S = 0.5


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
