"""The teacher batches a job submitted: the provider's batch id and the requests in it (never a key).

A batch is recorded the moment the provider accepts it, so a job restarted after a crash finds its
open batches here and collects them instead of paying for the same requests again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiosqlite

from nanodistill.store.db import Store, now


@dataclass(frozen=True)
class OpenBatch:
    id: str
    input_file_id: str
    requests: dict[str, dict[str, Any]]  # cache key (the batch's custom_id) -> the request, as the cache stores it


async def insert_batch(
    db: aiosqlite.Connection,
    batch_id: str,
    *,
    job_id: str,
    model: str,
    api_base: str | None,
    input_file_id: str,
    requests: dict[str, dict[str, Any]],
) -> None:
    await db.execute(
        "INSERT INTO teacher_batches (id, job_id, model, api_base, input_file_id, requests, status, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, 'submitted', ?)",
        (batch_id, job_id, model, api_base, input_file_id, json.dumps(requests, ensure_ascii=False), now()),
    )


async def mark_collected(db: aiosqlite.Connection, batch_id: str) -> None:
    await db.execute(
        "UPDATE teacher_batches SET status = 'collected', collected_at = ? WHERE id = ?", (now(), batch_id)
    )


async def open_batches(store: Store, job_id: str, model: str, api_base: str | None) -> list[OpenBatch]:
    """The job's batches for this teacher that were submitted but never collected, oldest first."""
    rows = await store.fetchall(
        "SELECT id, input_file_id, requests FROM teacher_batches WHERE job_id = ? AND model = ? "
        "AND COALESCE(api_base, '') = ? AND status = 'submitted' ORDER BY created_at",
        (job_id, model, api_base or ""),
    )
    return [OpenBatch(row["id"], row["input_file_id"], json.loads(row["requests"])) for row in rows]


async def job_batch_count(store: Store, job_id: str) -> int:
    row = await store.fetchone("SELECT COUNT(*) AS n FROM teacher_batches WHERE job_id = ?", (job_id,))
    return int(row["n"]) if row is not None else 0
