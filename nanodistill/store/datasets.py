"""Datasets and their examples: explicit SQL, paginated reads, all-or-nothing writes."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import aiosqlite
import anyio

from nanodistill.data.rows import Row
from nanodistill.errors import NanodistillError
from nanodistill.store.db import Store, new_id, now

NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
INSERT_BATCH = 1000
AUTO_HOLDOUT_FRACTION = 0.2
AUTO_HOLDOUT_MIN_ROWS = 10
AUTO_HOLDOUT_MAX = 500


@dataclass(frozen=True)
class Dataset:
    id: str
    name: str
    instruction: str
    description: str
    parent_id: str | None
    version: int
    duplicates_removed: int
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class Example:
    id: int
    position: int
    input: str
    output: str
    reasoning: str | None
    source: str
    split: str
    provenance: dict[str, Any]


@dataclass(frozen=True)
class AddResult:
    added: int
    duplicates: int


def check_name(name: str, field: str = "name") -> str:
    if not name or not name.strip():
        raise NanodistillError(f"'{field}' is empty. Use letters, digits, '.', '_' or '-', up to 64 characters.")
    if len(name) > 64:
        raise NanodistillError(f"'{field}' is {len(name)} characters long; the limit is 64. Shorten it.")
    if not NAME_PATTERN.fullmatch(name):  # fullmatch: '$' alone would let a trailing newline through
        raise NanodistillError(
            f"'{field}' {name!r} has characters that are not allowed; use only letters, digits, '.', '_' "
            "and '-' (e.g. 'support-tickets-v2')."
        )
    return name


def content_hash(row: Row) -> str:
    """Rows with the same input and output are the same example (reasoning aside).

    Input and output are joined by a NUL, which is unambiguous only while the input holds none; an
    input that does is keyed by its JSON pair instead (NUL-free, so it never meets a joined key),
    and keys already stored stay valid.
    """
    key = f"{row.input}\x00{row.output}" if "\x00" not in row.input else json.dumps([row.input, row.output])
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _dataset(row: aiosqlite.Row) -> Dataset:
    return Dataset(**{key: row[key] for key in Dataset.__dataclass_fields__})


def _example(row: aiosqlite.Row) -> Example:
    return Example(
        id=row["id"],
        position=row["position"],
        input=row["input"],
        output=row["output"],
        reasoning=row["reasoning"],
        source=row["source"],
        split=row["split"],
        provenance=json.loads(row["provenance"]),
    )


async def find_dataset(store: Store, name: str) -> Dataset | None:
    row = await store.fetchone("SELECT * FROM datasets WHERE name = ?", (name,))
    return _dataset(row) if row else None


async def find_dataset_by_id(store: Store, dataset_id: str) -> Dataset | None:
    row = await store.fetchone("SELECT * FROM datasets WHERE id = ?", (dataset_id,))
    return _dataset(row) if row else None


async def count_examples(store: Store, dataset_id: str) -> int:
    row = await store.fetchone("SELECT COUNT(*) FROM examples WHERE dataset_id = ?", (dataset_id,))
    return int(row[0]) if row else 0


async def get_dataset(store: Store, name: str, field: str = "dataset") -> Dataset:
    dataset = await find_dataset(store, name)
    if dataset is None:
        raise NanodistillError(f"'{field}': no dataset named {name!r}. Call list_datasets to see the names.")
    return dataset


async def get_dataset_by_id(store: Store, dataset_id: str) -> Dataset:
    row = await store.fetchone("SELECT * FROM datasets WHERE id = ?", (dataset_id,))
    if row is None:
        raise NanodistillError(f"dataset {dataset_id!r} no longer exists.")
    return _dataset(row)


async def insert_dataset(
    db: aiosqlite.Connection,
    name: str,
    *,
    instruction: str = "",
    description: str = "",
    parent_id: str | None = None,
) -> str:
    """Create the dataset row inside the caller's write transaction; the name must be free."""
    check_name(name)
    cursor = await db.execute("SELECT 1 FROM datasets WHERE name = ?", (name,))
    if await cursor.fetchone():
        raise NanodistillError(
            f"'name': a dataset named {name!r} already exists. Pick another name, add_examples to it, "
            "or delete_dataset first."
        )
    dataset_id = new_id("ds")
    stamp = now()
    await db.execute(
        "INSERT INTO datasets (id, name, instruction, description, parent_id, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (dataset_id, name, instruction, description, parent_id, stamp, stamp),
    )
    return dataset_id


async def insert_examples(
    db: aiosqlite.Connection,
    dataset_id: str,
    rows: Iterable[Row],
    *,
    source: str,
    split: str = "train",
    provenance: dict[str, Any] | None = None,
) -> AddResult:
    """Append rows in batches inside the caller's transaction; exact duplicates are skipped and counted."""
    cursor = await db.execute("SELECT COALESCE(MAX(position), -1) FROM examples WHERE dataset_id = ?", (dataset_id,))
    position = int((await cursor.fetchone())[0]) + 1  # type: ignore[index]
    prov = json.dumps(provenance or {})
    added = duplicates = 0
    async for batch in _batches(rows):
        stamp = now()
        params = []
        for row in batch:
            params.append(
                (
                    dataset_id,
                    position,
                    row.input,
                    row.output,
                    row.reasoning,
                    source,
                    split,
                    prov,
                    content_hash(row),
                    len(row.input),
                    len(row.output),
                    int(bool(row.reasoning)),
                    stamp,
                )
            )
            position += 1
        before = db.total_changes
        await db.executemany(
            "INSERT OR IGNORE INTO examples (dataset_id, position, input, output, reasoning, source, split, "
            "provenance, content_hash, input_chars, output_chars, has_reasoning, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params,
        )
        inserted = db.total_changes - before
        added += inserted
        duplicates += len(batch) - inserted
    await db.execute(
        "UPDATE datasets SET duplicates_removed = duplicates_removed + ?, updated_at = ? WHERE id = ?",
        (duplicates, now(), dataset_id),
    )
    return AddResult(added=added, duplicates=duplicates)


async def bump_version(db: aiosqlite.Connection, dataset_id: str) -> None:
    await db.execute("UPDATE datasets SET version = version + 1, updated_at = ? WHERE id = ?", (now(), dataset_id))


async def _batches(rows: Iterable[Row]) -> AsyncIterator[list[Row]]:
    """Rows in batches of INSERT_BATCH. Rows already in memory are sliced on the spot (an amplify job
    commits one example at a time); a lazy reader is drained in a worker thread, so parsing a big file
    never blocks the loop."""
    if isinstance(rows, Sequence):
        for start in range(0, len(rows), INSERT_BATCH):
            yield list(rows[start : start + INSERT_BATCH])
        return
    iterator = iter(rows)
    while batch := await anyio.to_thread.run_sync(_next_batch, iterator):
        yield batch


def _next_batch(rows: Iterator[Row]) -> list[Row]:
    return list(islice(rows, INSERT_BATCH))


def holdout_count(n_rows: int, fraction: float | None) -> int:
    """How many seeds to set aside: `fraction` of them, or by default 20% when there are 10 or more."""
    if fraction is None:
        if n_rows < AUTO_HOLDOUT_MIN_ROWS:
            return 0
        return min(round(n_rows * AUTO_HOLDOUT_FRACTION), AUTO_HOLDOUT_MAX)
    return round(n_rows * fraction)


async def mark_holdout(db: aiosqlite.Connection, dataset_id: str, count: int) -> None:
    """Set `count` rows aside as held-out gold answers, picked deterministically by content hash."""
    if count <= 0:
        return
    await db.execute(
        "UPDATE examples SET split = 'holdout' WHERE id IN (SELECT id FROM examples WHERE dataset_id = ? "
        "AND split = 'train' ORDER BY content_hash LIMIT ?)",
        (dataset_id, count),
    )


# Where each job kind keeps the datasets it reads or writes in its params: amplify (dataset_id,
# output_dataset_id), train (dataset_id), distill (dataset_id, amplified_dataset_id, or in rows stored
# before that name amplify.output_dataset_id), evaluate (test_dataset_id).
_JOB_DATASET_PATHS = (
    "$.dataset_id",
    "$.output_dataset_id",
    "$.amplified_dataset_id",
    "$.amplify.output_dataset_id",
    "$.test_dataset_id",
)


async def active_jobs_using(db: aiosqlite.Connection, dataset_id: str) -> list[tuple[str, str]]:
    """(id, kind) of the queued or running jobs that read or write the dataset, oldest first."""
    uses = " OR ".join("json_extract(params, ?) = ?" for _ in _JOB_DATASET_PATHS)
    params = [value for path in _JOB_DATASET_PATHS for value in (path, dataset_id)]
    cursor = await db.execute(
        f"SELECT id, kind FROM jobs WHERE status IN ('queued', 'running') AND ({uses}) ORDER BY created_at",
        params,
    )
    return [(row[0], row[1]) for row in await cursor.fetchall()]


async def delete_dataset(store: Store, name: str) -> int:
    """Delete a dataset and its examples, unless a live job uses it (checked in the same transaction)."""
    dataset = await get_dataset(store, name)
    async with store.write() as db:
        users = await active_jobs_using(db, dataset.id)
        if users:
            shown = ", ".join(f"{kind} job {job_id}" for job_id, kind in users)
            raise NanodistillError(
                f"'dataset' {name!r} is in use by {shown}, which reads or writes it. cancel_job it first "
                "(or wait for it to end), then delete_dataset again."
            )
        cursor = await db.execute("SELECT COUNT(*) FROM examples WHERE dataset_id = ?", (dataset.id,))
        count = int((await cursor.fetchone())[0])  # type: ignore[index]
        await db.execute("DELETE FROM datasets WHERE id = ?", (dataset.id,))
    return count


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def decode_cursor(cursor: str | None, field: str = "cursor") -> str | None:
    if not cursor:
        return None
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise NanodistillError(f"'{field}' is not a cursor this server returned. Pass next_cursor as given.") from None


async def list_datasets(
    store: Store, limit: int, cursor: str | None
) -> tuple[list[tuple[Dataset, int, str | None]], str | None]:
    """A page of (dataset, example count, parent name), keyset-paginated by name."""
    after = decode_cursor(cursor) or ""
    rows = await store.fetchall(
        "SELECT d.*, (SELECT COUNT(*) FROM examples e WHERE e.dataset_id = d.id) AS n_examples, "
        "p.name AS parent_name FROM datasets d LEFT JOIN datasets p ON p.id = d.parent_id "
        "WHERE d.name > ? ORDER BY d.name LIMIT ?",
        (after, limit + 1),
    )
    fields = Dataset.__dataclass_fields__
    page = [(Dataset(**{k: row[k] for k in fields}), row["n_examples"], row["parent_name"]) for row in rows[:limit]]
    next_cursor = encode_cursor(page[-1][0].name) if len(rows) > limit else None
    return page, next_cursor


async def dataset_counts(store: Store, dataset_id: str) -> dict[str, dict[str, int]]:
    rows = await store.fetchall(
        "SELECT source, split, COUNT(*) AS n FROM examples INDEXED BY examples_summary WHERE dataset_id = ? "
        "GROUP BY source, split",
        (dataset_id,),
    )
    by_source: dict[str, int] = {}
    by_split: dict[str, int] = {}
    for row in rows:
        by_source[row["source"]] = by_source.get(row["source"], 0) + row["n"]
        by_split[row["split"]] = by_split.get(row["split"], 0) + row["n"]
    return {"by_source": by_source, "by_split": by_split}


async def dataset_lengths(store: Store, dataset_id: str) -> dict[str, float]:
    row = await store.fetchone(
        "SELECT COUNT(*) AS n, AVG(input_chars) AS avg_in, MAX(input_chars) AS max_in, "
        "AVG(output_chars) AS avg_out, MAX(output_chars) AS max_out, "
        "SUM(has_reasoning) AS with_reasoning FROM examples INDEXED BY examples_summary WHERE dataset_id = ?",
        (dataset_id,),
    )
    assert row is not None
    return {
        "examples": row["n"],
        "input_chars_mean": round(row["avg_in"] or 0, 1),
        "input_chars_max": row["max_in"] or 0,
        "output_chars_mean": round(row["avg_out"] or 0, 1),
        "output_chars_max": row["max_out"] or 0,
        "with_reasoning": row["with_reasoning"] or 0,
    }


async def page_examples(
    store: Store, dataset_id: str, offset: int, limit: int, splits: tuple[str, ...] | None = None
) -> list[Example]:
    if splits:
        marks = ", ".join("?" for _ in splits)
        rows = await store.fetchall(
            f"SELECT * FROM examples WHERE dataset_id = ? AND split IN ({marks}) ORDER BY position LIMIT ? OFFSET ?",
            (dataset_id, *splits, limit, offset),
        )
    else:
        rows = await store.fetchall(
            "SELECT * FROM examples WHERE dataset_id = ? ORDER BY position LIMIT ? OFFSET ?",
            (dataset_id, limit, offset),
        )
    return [_example(row) for row in rows]


async def iter_examples(
    store: Store, dataset_id: str, splits: tuple[str, ...] | None = None, page: int = 1000
) -> AsyncIterator[Example]:
    """Every example in position order, a page at a time (keyset pagination on position)."""
    after = -1
    split_sql = ""
    params: tuple[Any, ...] = ()
    if splits:
        split_sql = f" AND split IN ({', '.join('?' for _ in splits)})"
        params = splits
    while True:
        rows = await store.fetchall(
            f"SELECT * FROM examples WHERE dataset_id = ? AND position > ?{split_sql} ORDER BY position LIMIT ?",
            (dataset_id, after, *params, page),
        )
        if not rows:
            return
        for row in rows:
            yield _example(row)
        after = rows[-1]["position"]
