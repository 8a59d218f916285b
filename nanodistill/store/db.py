"""The SQLite connection: WAL, foreign keys, migrations at open, one writer at a time.

Every process (the MCP server, each job process) opens its own `Store`. Writes go through
`Store.write()`, an explicit `BEGIN IMMEDIATE` transaction held under a lock, so a failed
call leaves the database exactly as it was.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from nanodistill.store.migrations import MIGRATIONS


def new_id(prefix: str) -> str:
    """Engine-generated ids name rows and artifact folders; user strings never do."""
    return f"{prefix}_{secrets.token_hex(6)}"


def now() -> float:
    return time.time()


class Store:
    """One aiosqlite connection plus the lock that serialises this process's write transactions."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path
        self._write_lock = anyio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA busy_timeout = 30000")
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute("PRAGMA foreign_keys = ON")
        store = cls(db, path)
        await store._migrate()
        return store

    async def close(self) -> None:
        await self.db.close()

    async def _migrate(self) -> None:
        async with self.write() as db:
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            rows = await (await db.execute("SELECT version FROM schema_migrations")).fetchall()
            applied = {row[0] for row in rows}
            for version, name, sql in MIGRATIONS:
                if version in applied:
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        await db.execute(statement)
                await db.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, now()),
                )

    @asynccontextmanager
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
        """An all-or-nothing write transaction; an exception inside rolls everything back.

        BEGIN and COMMIT are shielded from cancellation: aiosqlite runs them on its thread whether or not
        the caller still waits, so a cancel there would leave the connection inside a transaction (and
        every later write failing with "cannot start a transaction within a transaction")."""
        async with self._write_lock:
            with anyio.CancelScope(shield=True):
                await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self.db.execute("ROLLBACK")
                raise
            with anyio.CancelScope(shield=True):
                await self.db.execute("COMMIT")

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        """The first row of a query that selects by key or aggregates (all its rows are read)."""
        rows = await self.db.execute_fetchall(sql, tuple(params))
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        return list(await self.db.execute_fetchall(sql, tuple(params)))

    async def newest_first(
        self, table: str, filters: dict[str, Any], limit: int, before: float | None
    ) -> list[aiosqlite.Row]:
        """A page of `table` rows matching the non-None `filters`, newest first, created before `before`.

        `table` and the filter columns are names from the engine's code, never user strings.
        """
        clauses = [f"{column} = ?" for column, value in filters.items() if value is not None]
        params: list[Any] = [value for value in filters.values() if value is not None]
        if before is not None:
            clauses.append("created_at < ?")
            params.append(before)
        where = " AND ".join(clauses) or "1 = 1"
        return await self.fetchall(
            f"SELECT * FROM {table} WHERE {where} ORDER BY created_at DESC LIMIT ?", (*params, limit)
        )


async def checkpoint(store: Store) -> None:
    """Copy the WAL into the database file and empty it. On a full disk this frees the WAL's space, so a
    small write that just failed (a job's end) fits when tried again. Call it outside a transaction."""
    await store.db.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")


def check_writable(path: Path) -> None:
    """Open the database file and take its write lock once, synchronously (before a server starts
    serving); raises sqlite3.Error or OSError when it cannot be written."""
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
