"""Starting job processes detached, telling live ones from dead ones, and finding the dead.

A job runs as `python -m nanodistill.worker JOB_ID KIND` in its own session, so it outlives the
MCP server and its host. A job whose process is gone and whose heartbeat is stale is marked
`interrupted`, at server start and on every read.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from nanodistill.settings import Settings
from nanodistill.store import jobs as jobs_db
from nanodistill.store.db import Store, now

HEARTBEAT_S = 2.0
STALE_AFTER_S = 10.0

_children: dict[int, subprocess.Popen[bytes]] = {}


def log_path(settings: Settings, job_id: str) -> Path:
    return settings.artifact_dir("jobs", job_id) / "job.log"


def spawn_job(settings: Settings, job_id: str, kind: str) -> int:
    """Start the job's process in a new session; its output goes to the job's log file."""
    with log_path(settings, job_id).open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nanodistill.worker", job_id, kind],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "NANODISTILL_HOME": str(settings.home), "PYTHONUNBUFFERED": "1"},
            cwd=str(settings.home),
        )
    _children[proc.pid] = proc
    return proc.pid


def pid_alive(pid: int | None) -> bool:
    """True while the process exists and is not a zombie (reaping our own children as we go)."""
    if not pid:
        return False
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        return state not in ("Z", "X")
    return True


def signal_job(pid: int | None) -> None:
    if pid_alive(pid):
        assert pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def is_dead(job: jobs_db.Job, at: float) -> bool:
    if job.status not in jobs_db.ACTIVE:
        return False
    last_sign = job.heartbeat_at or job.started_at or job.created_at
    if at - last_sign < STALE_AFTER_S:
        return False
    return not pid_alive(job.pid)


async def reconcile(store: Store, job_ids: list[str] | None = None) -> list[str]:
    """Mark active jobs with a dead process and a stale heartbeat `interrupted`; return their ids."""
    if job_ids is None:
        job_ids = await jobs_db.active_job_ids(store)
    found = []
    for job_id in job_ids:
        job = await jobs_db.find_job(store, job_id)
        if job is None or not is_dead(job, now()):
            continue
        async with store.write() as db:
            if await jobs_db.mark_interrupted(db, job_id, now()):
                await jobs_db.add_event(
                    db, job_id, "warning", "job process is gone; marked interrupted. resume_job continues it."
                )
                found.append(job_id)
    return found
