"""Teacher batch mode and the reply-length cap, through the MCP tools against the stand-in teacher.

The stand-in serves OpenAI's batch API for real (`/v1/files`, `/v1/batches`): a batch moves one step
per status request and stays in progress while `batch_hold` is set, so nothing here waits on a clock.
Every job runs in its own process; what it stored is read from the SQLite file.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from nanodistill.testing import toy_sentiment
from nanodistill.testing.teacher_server import TeacherServer
from tests.mcp_helpers import call, call_error, wait_job

pytestmark = pytest.mark.anyio

SEEDS = [{"input": text, "output": label} for text, label in toy_sentiment.SEEDS]
PRICES = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}


async def make_dataset(client: Client) -> None:
    await call(
        client,
        "create_dataset",
        name="reviews",
        examples=SEEDS,
        instruction=toy_sentiment.INSTRUCTION,
        holdout_fraction=0,
    )


async def amplify(client: Client, server: TeacherServer, **args: Any) -> dict[str, Any]:
    base = {"dataset": "reviews", "teacher": server.model, "api_base": server.url, **PRICES}
    return await call(client, "amplify_dataset", **{**base, **args})


def ledger(home: Path, job_id: str) -> tuple[int, int, float]:
    con = sqlite3.connect(home / "nanodistill.db")
    try:
        row = con.execute(
            "SELECT SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd) FROM teacher_calls WHERE job_id = ?",
            (job_id,),
        ).fetchone()
        return int(row[0]), int(row[1]), float(row[2])
    finally:
        con.close()


def job_pid(home: Path, job_id: str) -> int | None:
    con = sqlite3.connect(home / "nanodistill.db")
    try:
        row = con.execute("SELECT pid FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row[0] if row else None
    finally:
        con.close()


async def kill(client: Client, home: Path, job_id: str) -> None:
    """kill -9 the job's process; returns once the job is seen interrupted."""
    pid = job_pid(home, job_id)
    assert pid
    os.kill(pid, signal.SIGKILL)
    view, _ = await wait_job(client, job_id, timeout=60, until=lambda v, _: v["status"] != "running")
    assert view["status"] == "interrupted", view


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline, what
        await anyio.sleep(0.05)


def batch_price(prompt_tokens: int, completion_tokens: int) -> float:
    live = prompt_tokens * PRICES["input_cost_per_token"] + completion_tokens * PRICES["output_cost_per_token"]
    return live / 2


def output_usage(server: TeacherServer) -> tuple[int, int, int]:
    """Lines, prompt and completion tokens in every batch output file the stand-in wrote."""
    lines = prompt = completion = 0
    for batch in server.batches.values():
        if batch["output_file_id"]:
            for line in server.files[batch["output_file_id"]].decode().splitlines():
                usage = json.loads(line)["response"]["body"]["usage"]
                lines += 1
                prompt += usage["prompt_tokens"]
                completion += usage["completion_tokens"]
    return lines, prompt, completion


def assert_no_request_sent_twice(server: TeacherServer) -> None:
    sent = [custom_id for submission in server.batch_submissions for custom_id in submission]
    assert len(sent) == len(set(sent)), "a teacher request went out in two batches"


@pytest.mark.slow
async def test_batch_job_fills_the_dataset_at_the_batch_price(
    client: Client, home: Path, server: TeacherServer
) -> None:
    await make_dataset(client)
    job_id = (await amplify(client, server, batch=True, target_size=30, max_tokens=300))["job"]["id"]
    view, events = await wait_job(client, job_id, timeout=180)
    assert view["status"] == "succeeded", view
    result = view["result"]
    assert result["total_examples"] == 30 and result["stopped_reason"] == "target", result
    assert server.calls == 0, "a batch job made live calls"
    assert result["teacher_batches"] == len(server.batch_submissions) >= 2  # traces come before answers
    assert all(batch["status"] == "completed" for batch in server.batches.values())
    assert_no_request_sent_twice(server)

    lines, prompt, completion = output_usage(server)
    teacher = result["teacher"]
    assert teacher["calls"] == lines and teacher["prompt_tokens"] == prompt
    assert teacher["completion_tokens"] == completion
    assert view["cost_usd"] == pytest.approx(batch_price(prompt, completion))
    assert ledger(home, job_id) == (prompt, completion, pytest.approx(batch_price(prompt, completion)))
    assert server.max_tokens == [300] * lines  # the cap reached every batched request
    assert any("batches, at the batch price" in e["message"] for e in events)


@pytest.mark.slow
async def test_killed_during_a_batch_the_resumed_job_collects_it_without_submitting_again(
    client: Client, home: Path, server: TeacherServer
) -> None:
    await make_dataset(client)
    server.faults.batch_hold = True
    job_id = (await amplify(client, server, batch=True, target_size=30))["job"]["id"]
    await until(lambda: bool(server.batch_polls), "the job polled no batch")  # only a batch it has recorded
    [held] = server.batch_polls
    await kill(client, home, job_id)
    assert len(server.batch_submissions) == 1 and server.batches[held]["status"] == "in_progress"
    polls_before = server.batch_polls[held]

    server.faults.batch_hold = False
    await call(client, "resume_job", job_id=job_id)
    view, events = await wait_job(client, job_id, timeout=180)
    assert view["status"] == "succeeded", view
    assert view["attempts"] == 2 and view["result"]["total_examples"] == 30
    assert server.batch_polls[held] > polls_before and server.batches[held]["status"] == "completed"
    assert sum(s == server.batch_submissions[0] for s in server.batch_submissions) == 1
    assert_no_request_sent_twice(server)
    assert any("collected 1 teacher batches" in e["message"] for e in events)
    assert server.calls == 0
    prompt, completion, cost = ledger(home, job_id)
    assert view["cost_usd"] == pytest.approx(cost) and cost == pytest.approx(batch_price(prompt, completion))


@pytest.mark.slow
async def test_a_batch_the_teacher_forgot_is_sent_again_on_resume(
    client: Client, home: Path, server: TeacherServer
) -> None:
    await make_dataset(client)
    server.faults.batch_hold = True
    job_id = (await amplify(client, server, batch=True, target_size=30))["job"]["id"]
    await until(lambda: bool(server.batch_polls), "the job polled no batch")
    [held] = server.batch_polls
    await kill(client, home, job_id)
    forgotten = server.batch_submissions[0]
    del server.batches[held]  # a local server restarted, or the provider deleted it

    server.faults.batch_hold = False
    await call(client, "resume_job", job_id=job_id)
    view, events = await wait_job(client, job_id, timeout=180)
    assert view["status"] == "succeeded" and view["result"]["total_examples"] == 30, view
    assert any("no longer knows 1 batches" in e["message"] for e in events)
    assert sum(set(forgotten) <= set(s) for s in server.batch_submissions[1:]) == 1  # sent again, once
    with sqlite3.connect(home / "nanodistill.db") as db:
        statuses = [r[0] for r in db.execute("SELECT status FROM teacher_batches WHERE job_id = ?", (job_id,))]
    assert "lost" in statuses and statuses.count("lost") == 1


async def test_teacher_without_batch_endpoints_is_refused_naming_the_option(
    client: Client, home: Path, server: TeacherServer
) -> None:
    await make_dataset(client)
    server.faults.no_batches = True
    error = await call_error(
        client, "amplify_dataset", dataset="reviews", teacher=server.model, api_base=server.url, batch=True
    )
    assert "'batch'" in error and "no batch API" in error and "without batch=True" in error, error
    assert not server.batch_submissions


async def test_max_tokens_reaches_live_calls_and_is_bounded(client: Client, home: Path, server: TeacherServer) -> None:
    await make_dataset(client)
    for bad in (0, 8, 10_000_000):
        error = await call_error(
            client, "amplify_dataset", dataset="reviews", teacher=server.model, api_base=server.url, max_tokens=bad
        )
        assert "'max_tokens' must be between" in error, error
    await amplify(client, server, dry_run=True, max_tokens=200)
    assert server.calls >= 6 and server.max_tokens == [200] * server.calls


async def test_dry_run_quotes_the_batch_price(client: Client, home: Path, server: TeacherServer) -> None:
    await make_dataset(client)
    live = (await amplify(client, server, dry_run=True))["quote"]
    calls = server.calls
    batched = (await amplify(client, server, dry_run=True, batch=True))["quote"]
    assert server.calls == calls and not server.batch_submissions  # the same samples, from the cache
    assert batched["projected_prompt_tokens"] == live["projected_prompt_tokens"]
    assert batched["projected_cost_usd"] == pytest.approx(live["projected_cost_usd"] / 2)
    assert any("batch rate" in note for note in batched["notes"])


async def test_distill_checks_and_passes_on_the_batch_and_max_tokens_options(
    client: Client, home: Path, server: TeacherServer
) -> None:
    server.faults.no_batches = True
    error = await call_error(
        client,
        "distill",
        name="reviews",
        instruction=toy_sentiment.INSTRUCTION,
        seeds=SEEDS,
        teacher=server.model,
        api_base=server.url,
        batch=True,
        max_tokens=8,
    )
    assert "'batch'" in error and "no batch API" in error, error
    assert "'max_tokens' must be between" in error, error


async def test_a_batch_api_that_fails_in_the_job_ends_it_with_an_error_naming_the_option(
    client: Client, home: Path, server: TeacherServer
) -> None:
    await make_dataset(client)
    server.faults.no_batch_uploads = True  # GET /batches answers, so the plan lets the job start
    job_id = (await amplify(client, server, batch=True, target_size=20))["job"]["id"]
    view, _ = await wait_job(client, job_id, timeout=120)
    assert view["status"] == "failed", view
    assert "'batch'" in view["error"] and "POST /files answered 404" in view["error"], view["error"]
    assert "without batch=True" in view["error"] and server.calls == 0


@pytest.mark.slow
async def test_killed_before_it_heard_the_batch_id_the_resumed_job_finds_the_batch_by_its_file(
    client: Client, home: Path, server: TeacherServer
) -> None:
    """The crash window between the provider creating a batch and the job recording its id."""
    await make_dataset(client)
    server.faults.batch_create_hang = True
    job_id = (await amplify(client, server, batch=True, target_size=20))["job"]["id"]
    await until(lambda: bool(server.batch_submissions), "the job created no batch")
    await kill(client, home, job_id)
    assert not server.batch_polls  # the job never learnt the batch id

    server.faults.batch_create_hang = False
    await call(client, "resume_job", job_id=job_id)
    view, events = await wait_job(client, job_id, timeout=180)
    assert view["status"] == "succeeded", view
    assert view["result"]["total_examples"] == 20
    assert server.batch_polls["batch_1"] >= 1 and server.batches["batch_1"]["status"] == "completed"
    assert_no_request_sent_twice(server)
    assert any("collected 1 teacher batches" in e["message"] for e in events)
    assert view["result"]["teacher_batches"] == len(server.batch_submissions)
