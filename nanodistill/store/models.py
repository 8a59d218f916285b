"""Registered models: trained students (base + adapter) and imported bases."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, cast

import aiosqlite

from nanodistill.errors import NanodistillError
from nanodistill.store.db import Store, new_id, now

ModelKind = Literal["trained", "base"]


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    kind: ModelKind
    base_model: str
    method: str | None
    dataset_id: str | None
    job_id: str | None
    instruction: str
    reasoning: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    report: dict[str, Any] | None
    path: str | None
    adapter_path: str | None
    created_at: float


def _model(row: aiosqlite.Row) -> Model:
    return Model(
        id=row["id"],
        name=row["name"],
        kind=cast(ModelKind, row["kind"]),
        base_model=row["base_model"],
        method=row["method"],
        dataset_id=row["dataset_id"],
        job_id=row["job_id"],
        instruction=row["instruction"],
        reasoning=row["reasoning"],
        params=json.loads(row["params"]),
        metrics=json.loads(row["metrics"]),
        report=json.loads(row["report"]) if row["report"] else None,
        path=row["path"],
        adapter_path=row["adapter_path"],
        created_at=row["created_at"],
    )


async def insert_model(db: aiosqlite.Connection, **fields: Any) -> str:
    model_id = new_id("model")
    row = {"id": model_id, "created_at": now(), **fields}
    for key in ("params", "metrics", "report"):
        if key in row and not isinstance(row[key], str | None):
            row[key] = json.dumps(row[key], default=str)
    names = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    await db.execute(f"INSERT INTO models ({names}) VALUES ({marks})", tuple(row.values()))
    return model_id


async def name_taken(store: Store, name: str) -> bool:
    return await store.fetchone("SELECT 1 FROM models WHERE name = ?", (name,)) is not None


async def find_model(store: Store, ref: str) -> Model | None:
    row = await store.fetchone("SELECT * FROM models WHERE id = ? OR name = ?", (ref, ref))
    return _model(row) if row else None


async def get_model(store: Store, ref: str, field: str = "model") -> Model:
    model = await find_model(store, ref)
    if model is None:
        raise NanodistillError(f"'{field}': no model {ref!r}. Call list_models to see model ids and names.")
    return model


async def list_models(store: Store, kind: ModelKind | None, limit: int, before: float | None) -> list[Model]:
    rows = await store.newest_first("models", {"kind": kind}, limit, before)
    return [_model(row) for row in rows]


async def set_report(db: aiosqlite.Connection, model_id: str, report: dict[str, Any]) -> None:
    await db.execute("UPDATE models SET report = ? WHERE id = ?", (json.dumps(report, default=str), model_id))


async def delete_model(db: aiosqlite.Connection, model_id: str) -> None:
    await db.execute("DELETE FROM models WHERE id = ?", (model_id,))


async def find_base_by_path(store: Store, path: str) -> Model | None:
    """The base model registered for a converted folder, if any (one conversion, one registration)."""
    row = await store.fetchone("SELECT * FROM models WHERE kind = 'base' AND path = ?", (path,))
    return _model(row) if row else None
