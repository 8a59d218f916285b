"""The content-addressed cache of teacher calls, stored in the `teacher_calls` table.

A resumed or repeated job asks the same prompts again; the cache answers them for free. Rows
also serve as the per-job ledger of tokens and cost. Requests are stored without keys.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol

from nanodistill.store import teacher_calls
from nanodistill.store.db import Store


@dataclass(frozen=True)
class CachedReply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    latency_s: float


class TeacherCache(Protocol):
    async def get(self, key: str) -> CachedReply | None: ...

    async def put(
        self, key: str, *, model: str, request: dict[str, Any], reply: CachedReply, job_id: str | None
    ) -> None: ...


def cache_key(
    model: str, api_base: str | None, messages: list[dict[str, str]], params: dict[str, Any], seed_tag: str
) -> str:
    """sha256 of everything that shapes a reply: the same model name at another server is another
    teacher. `seed_tag` lets callers ask twice on purpose. Without an api_base the key is what it was
    before api_base counted, so replies cached from a provider's own URL stay valid."""
    payload: dict[str, Any] = {"model": model, "messages": messages, "params": params, "seed_tag": seed_tag}
    if api_base:
        payload["api_base"] = api_base.rstrip("/")
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class SqliteTeacherCache:
    """The cache over one `Store`; each write is its own short transaction."""

    def __init__(self, store: Store, job_id: str | None = None) -> None:
        self.store = store
        self.job_id = job_id

    async def get(self, key: str) -> CachedReply | None:
        row = await teacher_calls.find_call(self.store, key)
        if row is None:
            return None
        return CachedReply(
            text=json.loads(row["reply"])["text"],
            prompt_tokens=row["prompt_tokens"],
            completion_tokens=row["completion_tokens"],
            cost_usd=row["cost_usd"],
            latency_s=row["latency_s"],
        )

    async def put(
        self, key: str, *, model: str, request: dict[str, Any], reply: CachedReply, job_id: str | None
    ) -> None:
        """Record a network reply, tagged with the calling job (else this cache's job)."""
        async with self.store.write() as db:
            await teacher_calls.insert_call(
                db,
                key,
                model=model,
                request=request,
                text=reply.text,
                prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens,
                cost_usd=reply.cost_usd,
                latency_s=reply.latency_s,
                job_id=job_id or self.job_id,
            )
