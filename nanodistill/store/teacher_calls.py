"""The teacher-call ledger: every network reply, keyed by its request's hash (the cache) and tagged
with the job that paid for it (cost and budget over a job's whole life). Stored without keys."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

from nanodistill.store.db import Store, now


async def find_call(store: Store, key: str) -> aiosqlite.Row | None:
    return await store.fetchone(
        "SELECT reply, prompt_tokens, completion_tokens, cost_usd, latency_s FROM teacher_calls WHERE key = ?",
        (key,),
    )


async def insert_call(
    db: aiosqlite.Connection,
    key: str,
    *,
    model: str,
    request: dict[str, Any],
    text: str,
    prompt_tokens: int,
    completion_tokens: int,
    cost_usd: float | None,
    latency_s: float,
    job_id: str | None,
) -> None:
    """Record a reply once (the first writer of a key wins)."""
    await db.execute(
        "INSERT OR IGNORE INTO teacher_calls (key, model, request, reply, prompt_tokens, "
        "completion_tokens, cost_usd, latency_s, job_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key,
            model,
            json.dumps(request, ensure_ascii=False),
            json.dumps({"text": text}, ensure_ascii=False),
            prompt_tokens,
            completion_tokens,
            cost_usd,
            latency_s,
            job_id,
            now(),
        ),
    )


async def job_call_totals(store: Store, job_id: str) -> dict[str, Any]:
    """What a job's network calls cost: calls, tokens, priced cost and how many were unpriced."""
    row = await store.fetchone(
        "SELECT COUNT(*) AS calls, COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens, "
        "COALESCE(SUM(completion_tokens), 0) AS completion_tokens, COALESCE(SUM(cost_usd), 0) AS cost_usd, "
        "SUM(cost_usd IS NULL) AS unpriced_calls FROM teacher_calls WHERE job_id = ?",
        (job_id,),
    )
    assert row is not None
    return {
        "calls": row["calls"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "cost_usd": row["cost_usd"],
        "unpriced_calls": row["unpriced_calls"] or 0,
    }
