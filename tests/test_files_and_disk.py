"""Files and disks through the MCP tools: exports that never overwrite or follow a planted symlink,
concurrent exports with one winner, a full disk (clear errors from every tool, nothing half-written, a
job process that skips heartbeats and still records its end, a failed job that resumes once space is
back), and datasets a live job still uses.

A full disk is simulated with RLIMIT_FSIZE: any write past the limit fails with EFBIG (Python ignores
SIGXFSZ), exactly where ENOSPC would fail it. It needs no mount and no root, and a job process
started while the limit is set inherits it.
"""

from __future__ import annotations

import hashlib
import json
import resource
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from nanodistill.jobs import run
from nanodistill.jobs.context import JobContext
from nanodistill.settings import load_settings
from nanodistill.store import jobs as jobs_db
from nanodistill.store.db import Store, now
from nanodistill.testing import toy_sentiment
from nanodistill.testing.teacher_server import TeacherServer
from tests.mcp_helpers import call, call_error, wait_job

pytestmark = pytest.mark.anyio

SEEDS = [{"input": text, "output": label} for text, label in toy_sentiment.SEEDS]


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past `limit` bytes of any file fail, as on a full disk, in this process and the ones it starts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def checkpoint(home: Path) -> None:
    """Empty the WAL, so the next write to the database starts at its first byte."""
    con = sqlite3.connect(home / "nanodistill.db")
    try:
        busy = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        assert busy == 0
    finally:
        con.close()


def count_rows(home: Path, sql: str, *params: Any) -> int:
    con = sqlite3.connect(home / "nanodistill.db")
    try:
        return int(con.execute(sql, params).fetchone()[0])
    finally:
        con.close()


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def rows(n: int, width: int = 20) -> list[dict[str, str]]:
    return [{"input": f"question {i} " + "x" * width, "output": f"answer {i}"} for i in range(n)]


# -- export_dataset never overwrites --------------------------------------------------------------


async def test_export_never_follows_a_planted_partial_symlink(client: Client, home: Path, tmp_path: Path) -> None:
    await call(client, "create_dataset", name="exp", examples=rows(3))
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path.parent / f"{tmp_path.name}-victim.txt"  # outside the allowed folders
    victim.write_text("precious\n", encoding="utf-8")
    (out / "data.jsonl.partial").symlink_to(victim)
    result = await call(client, "export_dataset", dataset="exp", path=str(out / "data.jsonl"))
    assert result["rows"] == 3 and len(jsonl(out / "data.jsonl")) == 3
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert (out / "data.jsonl.partial").is_symlink()
    assert sorted(p.name for p in out.iterdir()) == ["data.jsonl", "data.jsonl.partial"]


async def test_export_keeps_an_existing_partial_file(client: Client, home: Path, tmp_path: Path) -> None:
    await call(client, "create_dataset", name="exp", examples=rows(3))
    (tmp_path / "data.jsonl.partial").write_text("someone else's work\n", encoding="utf-8")
    await call(client, "export_dataset", dataset="exp", path=str(tmp_path / "data.jsonl"))
    assert (tmp_path / "data.jsonl.partial").read_text(encoding="utf-8") == "someone else's work\n"


async def test_export_to_a_symlink_destination_is_refused(client: Client, home: Path, tmp_path: Path) -> None:
    await call(client, "create_dataset", name="exp", examples=rows(3))
    victim = tmp_path / "victim.jsonl"
    (tmp_path / "dangling.jsonl").symlink_to(victim)  # points at a file that does not exist yet
    message = await call_error(client, "export_dataset", dataset="exp", path=str(tmp_path / "dangling.jsonl"))
    assert "'path'" in message and "already exists" in message
    assert not victim.exists()


async def test_concurrent_exports_to_one_path_have_one_winner(client: Client, home: Path, tmp_path: Path) -> None:
    await call(client, "create_dataset", name="big", examples=rows(2500), holdout_fraction=0.0)
    target = tmp_path / "big.jsonl"
    outcomes: list[Any] = []

    async def export() -> None:
        result = await client.call_tool("export_dataset", {"dataset": "big", "path": str(target)})
        outcomes.append(result)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(export)
    won = [r for r in outcomes if not r.is_error]
    lost = [" ".join(getattr(c, "text", "") for c in r.content) for r in outcomes if r.is_error]
    assert len(won) == 1 and len(lost) == 4, lost
    for message in lost:
        assert "'path'" in message and "already exists" in message, message
    assert [r["input"] for r in jsonl(target)] == [r["input"] for r in rows(2500)]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == ["big.jsonl"]


# -- a full disk -------------------------------------------------------------------------------------


async def test_export_on_a_full_disk_says_so_and_leaves_nothing(client: Client, home: Path, tmp_path: Path) -> None:
    await call(client, "create_dataset", name="exp", examples=rows(50, width=200))
    out = tmp_path / "out"
    out.mkdir()
    with file_size_limit(4096):
        message = await call_error(client, "export_dataset", dataset="exp", path=str(out / "data.jsonl"))
    assert str(out) in message and "free" in message and "try again" in message, message
    assert list(out.iterdir()) == []
    assert (await call(client, "export_dataset", dataset="exp", path=str(out / "data.jsonl")))["rows"] == 50


async def test_dataset_writes_on_a_full_disk_say_so_and_store_nothing(client: Client, home: Path) -> None:
    await call(client, "create_dataset", name="kept", examples=rows(3))
    checkpoint(home)
    with file_size_limit(1):
        created = await call_error(client, "create_dataset", name="new", examples=rows(3))
        added = await call_error(client, "add_examples", dataset="kept", examples=rows(6))
    for message in (created, added):
        assert str(home) in message and "free" in message and "try again" in message, message
    assert count_rows(home, "SELECT COUNT(*) FROM datasets") == 1
    assert count_rows(home, "SELECT COUNT(*) FROM examples") == 3
    assert (await call(client, "create_dataset", name="new", examples=rows(3)))["added"] == 3


async def running_job(store: Store, **fields: Any) -> JobContext:
    """A job row marked running (no process behind it), and the context its process would have."""
    async with store.write() as db:
        job_id = await jobs_db.insert_job(db, "amplify", {})
        await jobs_db.update_job(db, job_id, status="running", started_at=now(), **fields)
    return JobContext(store=store, settings=load_settings(), job=await jobs_db.get_job(store, job_id))


async def test_job_tools_on_a_full_disk_say_so(client: Client, home: Path) -> None:
    """get_job, list_jobs and cancel_job first mark a dead job interrupted: a write, even for a read."""
    store = await Store.open(home / "nanodistill.db")
    try:
        job_id = (await running_job(store, heartbeat_at=1.0)).id  # long dead
    finally:
        await store.close()
    checkpoint(home)
    with file_size_limit(1):
        for tool, arguments in (("get_job", {"job_id": job_id}), ("list_jobs", {}), ("cancel_job", {"job_id": job_id})):
            message = await call_error(client, tool, **arguments)
            assert str(home) in message and "free" in message and "try again" in message, (tool, message)
    assert (await call(client, "get_job", job_id=job_id))["status"] == "interrupted"


async def test_heartbeat_skips_a_beat_on_a_full_disk(home: Path) -> None:
    """A failed beat must not end the job process (it would leave the job `running` with no reason): the
    heartbeat goes on and still notices a cancel."""
    store = await Store.open(home / "nanodistill.db")
    try:
        ctx = await running_job(store, cancel_requested=1)
        checkpoint(home)
        with file_size_limit(1), anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run._heartbeat, ctx)
                await ctx.cancel.wait()
                tg.cancel_scope.cancel()
    finally:
        await store.close()


async def test_a_job_end_on_a_full_disk_is_recorded_after_emptying_the_wal(home: Path) -> None:
    """The WAL holds the disk's last bytes: the end of a job is written once it is checkpointed away."""
    store = await Store.open(home / "nanodistill.db")
    try:
        ctx = await running_job(store)
        checkpoint(home)
        for _ in range(100):  # heartbeats fill the WAL with frames of one page
            async with store.write() as db:
                await jobs_db.beat(db, ctx.id, now())
        wal = home / "nanodistill.db-wal"
        assert wal.stat().st_size > 2 * (home / "nanodistill.db").stat().st_size
        with file_size_limit(wal.stat().st_size):
            await run._finish(ctx, "failed", error="the disk is full")
        job = await jobs_db.get_job(store, ctx.id)
        assert (job.status, job.error, job.pid) == ("failed", "the disk is full", None)
        events = await jobs_db.events_after(store, ctx.id, 0, limit=10)
        assert events[-1].message == "job failed: the disk is full"
    finally:
        await store.close()


def heavy_holdout(n: int) -> list[dict[str, str]]:
    """`n` rows of ~90 KB whose content hashes sort before every toy seed's, so create_dataset holds
    them out (it holds out the lowest hashes) and the amplify job's first big write copies them."""
    lowest = min(hashlib.sha256(f"{s['input']}\x00{s['output']}".encode()).hexdigest() for s in SEEDS)
    found: list[dict[str, str]] = []
    salt = 0
    while len(found) < n:
        text = f"The long review number {salt} was great. " + "filler " * 13_000
        salt += 1
        if hashlib.sha256(f"{text}\x00positive".encode()).hexdigest() < lowest:
            found.append({"input": text, "output": "positive"})
    return found


@pytest.mark.slow
async def test_amplify_job_on_a_full_disk_fails_clearly_and_resumes(
    client: Client, home: Path, server: TeacherServer
) -> None:
    held = heavy_holdout(4)
    examples = SEEDS + held
    created = await call(
        client,
        "create_dataset",
        name="reviews",
        examples=examples,
        instruction=toy_sentiment.INSTRUCTION,
        holdout_fraction=len(held) / len(examples),
    )
    assert created["held_out"] == len(held)
    checkpoint(home)
    # 256 KiB of database writes: room for the job to start, not for the ~360 KB of held-out rows it copies.
    with file_size_limit(256 * 1024):
        started = await call(
            client, "amplify_dataset", dataset="reviews", teacher=server.model, api_base=server.url, target_size=16
        )
    job_id = started["job"]["id"]
    view, events = await wait_job(client, job_id)
    assert view["status"] == "failed", view
    assert str(home) in view["error"] and "free" in view["error"] and "resume_job" in view["error"], view["error"]
    assert "internal error" not in view["error"]
    assert events[-1]["level"] == "error"
    resumed = await call(client, "resume_job", job_id=job_id)
    view, _ = await wait_job(client, job_id, after=resumed["events_cursor"])
    assert view["status"] == "succeeded", view
    assert view["result"]["total_examples"] == 16
    assert count_rows(
        home,
        "SELECT COUNT(*) FROM examples e JOIN datasets d ON d.id = e.dataset_id "
        "WHERE d.name = 'reviews-amplified' AND e.split = 'holdout'",
    ) == len(held)


# -- datasets a live job uses --------------------------------------------------------------------------


async def test_delete_dataset_refuses_while_a_job_uses_it(client: Client, home: Path, server: TeacherServer) -> None:
    await call(client, "create_dataset", name="reviews", examples=SEEDS, instruction=toy_sentiment.INSTRUCTION)
    server.faults.update({"hang": 10_000, "hang_s": 300})  # the job cannot end on its own
    started = await call(
        client, "amplify_dataset", dataset="reviews", teacher=server.model, api_base=server.url, target_size=20
    )
    job_id = started["job"]["id"]
    for name in ("reviews-amplified", "reviews"):
        message = await call_error(client, "delete_dataset", dataset=name)
        assert job_id in message and "amplify" in message and "cancel_job" in message, message
    assert count_rows(home, "SELECT COUNT(*) FROM datasets") == 2
    await call(client, "cancel_job", job_id=job_id)
    view, _ = await wait_job(client, job_id)
    assert view["status"] == "cancelled", view
    assert (await call(client, "delete_dataset", dataset="reviews-amplified"))["deleted"] == "reviews-amplified"
    assert (await call(client, "delete_dataset", dataset="reviews"))["deleted"] == "reviews"
