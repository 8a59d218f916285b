"""Jobs and their events: the durable record a job process writes and every reader follows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, cast

import aiosqlite

from nanodistill.errors import NanodistillError
from nanodistill.store.db import Store, new_id, now

JobKindName = Literal["amplify", "train", "evaluate", "export", "import", "distill", "improve"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
ACTIVE: tuple[JobStatus, ...] = ("queued", "running")
FINISHED: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")
RESUMABLE: tuple[JobStatus, ...] = ("interrupted", "failed", "cancelled")


@dataclass(frozen=True)
class Job:
    id: str
    kind: JobKindName
    status: JobStatus
    params: dict[str, Any]
    stage: str | None
    progress_done: float
    progress_total: float | None
    metrics: dict[str, Any]
    state: dict[str, Any]
    result: dict[str, Any] | None
    cost_usd: float
    error: str | None
    note: str | None
    pid: int | None
    heartbeat_at: float | None
    cancel_requested: bool
    parent_id: str | None
    attempts: int
    created_at: float
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True)
class Event:
    seq: int
    at: float
    level: str
    message: str
    data: dict[str, Any]


def _job(row: aiosqlite.Row) -> Job:
    return Job(
        id=row["id"],
        kind=cast(JobKindName, row["kind"]),
        status=cast(JobStatus, row["status"]),
        params=json.loads(row["params"]),
        stage=row["stage"],
        progress_done=row["progress_done"],
        progress_total=row["progress_total"],
        metrics=json.loads(row["metrics"]),
        state=json.loads(row["state"]),
        result=json.loads(row["result"]) if row["result"] else None,
        cost_usd=row["cost_usd"],
        error=row["error"],
        note=row["note"],
        pid=row["pid"],
        heartbeat_at=row["heartbeat_at"],
        cancel_requested=bool(row["cancel_requested"]),
        parent_id=row["parent_id"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


async def insert_job(
    db: aiosqlite.Connection, kind: JobKindName, params: dict[str, Any], parent_id: str | None = None
) -> str:
    job_id = new_id("job")
    await db.execute(
        "INSERT INTO jobs (id, kind, status, params, parent_id, created_at) VALUES (?, ?, 'queued', ?, ?, ?)",
        (job_id, kind, json.dumps(params), parent_id, now()),
    )
    return job_id


async def find_job(store: Store, job_id: str) -> Job | None:
    row = await store.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
    return _job(row) if row else None


async def get_job(store: Store, job_id: str, field: str = "job_id") -> Job:
    job = await find_job(store, job_id)
    if job is None:
        raise NanodistillError(f"'{field}': no job {job_id!r}. Call list_jobs to see job ids.")
    return job


async def child_jobs(store: Store, parent_id: str) -> list[Job]:
    rows = await store.fetchall("SELECT * FROM jobs WHERE parent_id = ? ORDER BY created_at", (parent_id,))
    return [_job(row) for row in rows]


async def list_jobs(store: Store, status: str | None, kind: str | None, limit: int, before: float | None) -> list[Job]:
    rows = await store.newest_first("jobs", {"status": status, "kind": kind}, limit, before)
    return [_job(row) for row in rows]


async def events_after(store: Store, job_id: str, after: int, limit: int = 200) -> list[Event]:
    rows = await store.fetchall(
        "SELECT seq, at, level, message, data FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        (job_id, after, limit),
    )
    return [Event(r["seq"], r["at"], r["level"], r["message"], json.loads(r["data"])) for r in rows]


async def last_event_seq(store: Store, job_id: str) -> int:
    row = await store.fetchone("SELECT COALESCE(MAX(seq), 0) FROM job_events WHERE job_id = ?", (job_id,))
    return int(row[0]) if row else 0


async def add_event(
    db: aiosqlite.Connection, job_id: str, level: str, message: str, data: dict[str, Any] | None = None
) -> int:
    cursor = await db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM job_events WHERE job_id = ?", (job_id,))
    seq = int((await cursor.fetchone())[0])  # type: ignore[index]
    await db.execute(
        "INSERT INTO job_events (job_id, seq, at, level, message, data) VALUES (?, ?, ?, ?, ?, ?)",
        (job_id, seq, now(), level, message, json.dumps(data or {}, default=str)),
    )
    return seq


async def update_job(db: aiosqlite.Connection, job_id: str, **fields: Any) -> None:
    """Set columns by name; dict values are stored as JSON."""
    if not fields:
        return
    names = []
    values = []
    for name, value in fields.items():
        names.append(f"{name} = ?")
        values.append(json.dumps(value, default=str) if isinstance(value, dict) else value)
    await db.execute(f"UPDATE jobs SET {', '.join(names)} WHERE id = ?", (*values, job_id))


async def merge_json(db: aiosqlite.Connection, job_id: str, column: str, update: dict[str, Any]) -> None:
    """Merge keys into the metrics or state JSON without losing what other writers stored."""
    assert column in ("metrics", "state")
    await db.execute(
        f"UPDATE jobs SET {column} = json_patch({column}, ?) WHERE id = ?", (json.dumps(update, default=str), job_id)
    )


async def record_launch(db: aiosqlite.Connection, job_id: str, pid: int) -> None:
    """The spawned process's pid, unless the process already wrote its own (it may start first)."""
    await db.execute("UPDATE jobs SET pid = COALESCE(pid, ?) WHERE id = ? AND status = 'queued'", (pid, job_id))


async def requeue(db: aiosqlite.Connection, job_id: str) -> bool:
    """Move an ended, resumable job back to `queued` in one statement: of several concurrent resumes
    exactly one sees a row change, so one process is started. The heartbeat is stamped now: until the
    new process beats, the old stale one (and no pid) would have a concurrent reconcile take the job for
    dead, mark it `interrupted`, and let a second resume start a second process."""
    cursor = await db.execute(
        "UPDATE jobs SET status = 'queued', cancel_requested = 0, error = NULL, note = NULL, finished_at = NULL, "
        "pid = NULL, heartbeat_at = ? WHERE id = ? AND status IN ('interrupted', 'failed', 'cancelled')",
        (now(), job_id),
    )
    return cursor.rowcount == 1


async def request_cancel(db: aiosqlite.Connection, job_id: str) -> None:
    """Set the cancel flag on a job and on its active stages."""
    await db.execute(
        "UPDATE jobs SET cancel_requested = 1 WHERE id = ? OR (parent_id = ? AND status IN ('queued', 'running'))",
        (job_id, job_id),
    )


async def beat(db: aiosqlite.Connection, job_id: str, at: float) -> None:
    """Heartbeat for a job and the stages it runs in-process."""
    await db.execute(
        "UPDATE jobs SET heartbeat_at = ? WHERE id = ? OR (parent_id = ? AND status IN ('queued', 'running'))",
        (at, job_id, job_id),
    )


async def cancel_asked(store: Store, job_id: str) -> bool:
    """Whether a cancel was asked of the job or an active stage. A stage cancelled in an earlier attempt
    keeps its flag until it is re-queued, and reading it would cancel the resumed job at once."""
    row = await store.fetchone(
        "SELECT MAX(cancel_requested) FROM jobs WHERE id = ? OR (parent_id = ? AND status IN ('queued', 'running'))",
        (job_id, job_id),
    )
    return bool(row and row[0])


async def active_job_ids(store: Store) -> list[str]:
    rows = await store.fetchall("SELECT id FROM jobs WHERE status IN ('queued', 'running')")
    return [row["id"] for row in rows]


async def mark_interrupted(db: aiosqlite.Connection, job_id: str, at: float) -> bool:
    """Mark an active job whose process is gone `interrupted`; False when it ended meanwhile."""
    cursor = await db.execute(
        "UPDATE jobs SET status = 'interrupted', finished_at = ?, pid = NULL "
        "WHERE id = ? AND status IN ('queued', 'running')",
        (at, job_id),
    )
    return cursor.rowcount == 1


async def roll_up_cost(db: aiosqlite.Connection, parent_id: str) -> None:
    """A parent job's cost is the sum of its children's."""
    await db.execute(
        "UPDATE jobs SET cost_usd = (SELECT COALESCE(SUM(cost_usd), 0) FROM jobs WHERE parent_id = ?) WHERE id = ?",
        (parent_id, parent_id),
    )
