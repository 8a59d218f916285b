"""The store on its own: migrations, the all-or-nothing write, the teacher-call ledger, and the
start-up writability check (no MCP, no job processes)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import pytest

from nanodistill.store import teacher_calls
from nanodistill.store.db import Store, check_writable
from nanodistill.store.migrations import MIGRATIONS

pytestmark = pytest.mark.anyio


async def test_migrations_apply_once_and_reopening_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nanodistill.db"
    first = await Store.open(path)
    await first.close()
    again = await Store.open(path)
    try:
        versions = [row[0] for row in await again.fetchall("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [version for version, _, _ in MIGRATIONS]
        mode = await again.fetchone("PRAGMA journal_mode")
        assert mode is not None and mode[0] == "wal"
        keys = await again.fetchone("PRAGMA foreign_keys")
        assert keys is not None and keys[0] == 1
    finally:
        await again.close()


async def test_a_failed_write_leaves_the_database_as_it_was(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.write() as db:
            await db.execute("CREATE TABLE half (x)")
            raise RuntimeError("fails inside the transaction")
    tables = {row[0] for row in await store.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "half" not in tables and not store.db.in_transaction


async def test_the_call_ledger_totals_a_jobs_calls_and_the_first_writer_of_a_key_wins(store: Store) -> None:
    for key, job, cost in (("k1", "job_a", 0.5), ("k2", "job_a", None), ("k1", "job_b", 9.0), ("k3", "job_b", 1.0)):
        async with store.write() as db:
            await teacher_calls.insert_call(
                db,
                key,
                model="m",
                request={"messages": []},
                text="reply",
                prompt_tokens=10,
                completion_tokens=5,
                cost_usd=cost,
                latency_s=0.1,
                job_id=job,
            )
    a = await teacher_calls.job_call_totals(store, "job_a")
    assert a == {"calls": 2, "prompt_tokens": 20, "completion_tokens": 10, "cost_usd": 0.5, "unpriced_calls": 1}
    b = await teacher_calls.job_call_totals(store, "job_b")
    assert b["calls"] == 1 and b["cost_usd"] == 1.0  # k1 stayed job_a's: a cached reply costs nothing again
    found = await teacher_calls.find_call(store, "k1")
    assert found is not None and found["cost_usd"] == 0.5


def test_check_writable_refuses_a_database_it_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "nanodistill.db"
    check_writable(path)
    assert path.exists()
    with pytest.raises((sqlite3.Error, OSError)):
        check_writable(tmp_path / "missing-folder" / "nanodistill.db")


async def test_a_write_cancelled_while_it_begins_leaves_no_transaction_open(tmp_path: Path) -> None:
    """What once made an amplify job die `interrupted` instead of `failed`: an event write cancelled while its
    BEGIN waited on aiosqlite's thread left the connection inside a transaction, so the job could not
    record how it ended."""
    path = tmp_path / "store.db"
    store = await Store.open(path)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the write lock, so the store's BEGIN waits (busy_timeout)
        threading.Timer(0.5, other.execute, ("ROLLBACK",)).start()
        with anyio.move_on_after(0.1) as waited:
            async with store.write() as db:
                await db.execute("CREATE TABLE never (x)")
        assert waited.cancelled_caught
        async with store.write() as db:
            await db.execute("CREATE TABLE later (x)")
        assert not store.db.in_transaction
        tables = {row[0] for row in await store.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "later" in tables and "never" not in tables
    finally:
        other.close()
        await store.close()
