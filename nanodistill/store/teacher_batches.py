"""The teacher batches a job sent: the uploaded request file, the provider's batch id and the requests in
it (never a key).

A row is written as soon as the request file is uploaded (`uploaded`) and gets the batch id the moment
the provider accepts the batch (`submitted`), so a job restarted after a crash finds every batch it may
have paid for here, even one whose id it never heard back, and collects it instead of sending the same
requests again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import aiosqlite

from nanodistill.store.db import Store, now

BatchEnd = Literal["collected", "never_created", "lost"]  # lost: the provider no longer knows it


@dataclass(frozen=True)
class OpenBatch:
    input_file_id: str
    batch_id: str | None  # None: uploaded, but the job never heard whether the batch was created
    requests: dict[str, dict[str, Any]]  # cache key (the batch line's custom_id) -> the request as cached


async def insert_upload(
    db: aiosqlite.Connection,
    input_file_id: str,
    *,
    job_id: str,
    model: str,
    api_base: str | None,
    requests: dict[str, dict[str, Any]],
) -> None:
    await db.execute(
        "INSERT INTO teacher_batches (input_file_id, job_id, model, api_base, requests, status, created_at) "
        "VALUES (?, ?, ?, ?, ?, 'uploaded', ?)",
        (input_file_id, job_id, model, api_base, json.dumps(requests, ensure_ascii=False), now()),
    )


async def mark_submitted(db: aiosqlite.Connection, input_file_id: str, batch_id: str) -> None:
    await db.execute(
        "UPDATE teacher_batches SET batch_id = ?, status = 'submitted' WHERE input_file_id = ?",
        (batch_id, input_file_id),
    )


async def mark_ended(db: aiosqlite.Connection, input_file_id: str, status: BatchEnd) -> None:
    await db.execute(
        "UPDATE teacher_batches SET status = ?, ended_at = ? WHERE input_file_id = ?", (status, now(), input_file_id)
    )


async def open_batches(store: Store, job_id: str, model: str, api_base: str | None) -> list[OpenBatch]:
    """The job's batches for this teacher that were uploaded or submitted but never collected, oldest first."""
    rows = await store.fetchall(
        "SELECT input_file_id, batch_id, requests FROM teacher_batches WHERE job_id = ? AND model = ? "
        "AND COALESCE(api_base, '') = ? AND status IN ('uploaded', 'submitted') ORDER BY created_at",
        (job_id, model, api_base or ""),
    )
    return [OpenBatch(row["input_file_id"], row["batch_id"], json.loads(row["requests"])) for row in rows]


async def job_batch_count(store: Store, job_id: str) -> int:
    """The batches the provider created for this job (an upload whose batch never existed is not one)."""
    row = await store.fetchone(
        "SELECT COUNT(*) AS n FROM teacher_batches WHERE job_id = ? AND batch_id IS NOT NULL", (job_id,)
    )
    return int(row["n"]) if row is not None else 0
