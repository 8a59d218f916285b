"""Amplify jobs through the MCP tools: the whole run, teacher faults, cancel, kill -9 and resume, budgets,
dry-run quotes, secrets, bad input, and listing jobs.

The teacher is the local stand-in server (`nanodistill.testing.teacher_server`) reached through LiteLLM;
every job runs in its own process, exactly as in production. What the job stored is read straight from
the SQLite file.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from nanodistill.data.similarity import NearDuplicateIndex, normalize
from nanodistill.testing import toy_sentiment
from nanodistill.testing.teacher_server import TeacherServer
from tests.mcp_helpers import call, call_error, read_json

pytestmark = pytest.mark.anyio

SEEDS = [{"input": text, "output": label} for text, label in toy_sentiment.SEEDS]
DATASET = "reviews"
OUTPUT = f"{DATASET}-amplified"


# -- helpers ---------------------------------------------------------------------------------------


async def wait_job(client: Client, job_id: str, timeout: float = 120.0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Follow a job with get_job (long-polling, events by cursor) until it ends; return the last view and
    every event seen, oldest first, with no gaps or repeats."""
    return await wait_until(client, job_id, lambda view: view["next_poll_s"] is None, timeout)


async def wait_until(
    client: Client, job_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 120.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    cursor: int | None = None
    deadline = time.monotonic() + timeout
    while True:
        args: dict[str, Any] = {"job_id": job_id, "wait_s": 2}
        if cursor is not None:
            args["events_after"] = cursor
        view = await call(client, "get_job", **args)
        events += view["events"]
        cursor = view["events_cursor"]
        if done(view):
            seqs = [e["seq"] for e in events]
            assert seqs == sorted(set(seqs)), f"events repeated or out of order: {seqs}"
            return view, events
        if view["next_poll_s"] is None:
            raise AssertionError(f"job {job_id} ended {view['status']} before the awaited state: {view}")
        assert time.monotonic() < deadline, f"job {job_id} still {view['status']} after {timeout:g} s: {view}"


def db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "nanodistill.db")


def rows(home: Path, dataset: str) -> list[dict[str, Any]]:
    con = db(home)
    con.row_factory = sqlite3.Row
    try:
        found = con.execute(
            "SELECT e.position, e.input, e.output, e.reasoning, e.source, e.split, e.provenance FROM examples e "
            "JOIN datasets d ON d.id = e.dataset_id WHERE d.name = ? ORDER BY e.position",
            (dataset,),
        ).fetchall()
        return [{**dict(r), "provenance": json.loads(r["provenance"])} for r in found]
    finally:
        con.close()


def synthetic_count(home: Path, dataset: str = OUTPUT) -> int:
    return sum(r["source"] == "synthetic" for r in rows(home, dataset))


def job_pid(home: Path, job_id: str) -> int | None:
    con = db(home)
    try:
        row = con.execute("SELECT pid FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row[0] if row else None
    finally:
        con.close()


def footprint(home: Path) -> dict[str, Any]:
    """What a refused amplify_dataset must leave exactly as it was."""
    con = db(home)
    try:
        return {
            "jobs": con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0],
            "datasets": [r[0] for r in con.execute("SELECT name FROM datasets ORDER BY name")],
            "examples": con.execute("SELECT COUNT(*) FROM examples").fetchone()[0],
        }
    finally:
        con.close()


def explain(home: Path, view: dict[str, Any]) -> str:
    """A failed assertion's message: the job record and the end of its log."""
    log = home / "artifacts" / "jobs" / view["id"] / "job.log"
    tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-40:]) if log.exists() else "(no log)"
    return f"{json.dumps(view, indent=1, default=str)[:4000]}\n--- job.log ---\n{tail}"


def assert_no_near_duplicates(inputs: list[str]) -> None:
    assert len({normalize(text) for text in inputs}) == len(inputs), "an input is stored twice"
    index = NearDuplicateIndex(0.9)
    for text in inputs:
        assert index.find(text) is None, f"near-duplicate input stored: {text!r} ~ {index.find(text)!r}"
        index.add(text)


async def make_dataset(
    client: Client, name: str = DATASET, seeds: list[dict[str, str]] | None = None, **extra: Any
) -> dict[str, Any]:
    return await call(
        client, "create_dataset", name=name, examples=seeds or SEEDS, instruction=toy_sentiment.INSTRUCTION, **extra
    )


async def amplify(client: Client, server: TeacherServer, **args: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"dataset": DATASET, "teacher": server.model, "api_base": server.url}
    return await call(client, "amplify_dataset", **{**base, **args})


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the whole run ---------------------------------------------------------------------------------


@pytest.mark.slow
async def test_amplify_job_reaches_target_with_traced_seeds_and_new_examples(
    client: Client, home: Path, server: TeacherServer
) -> None:
    rng = random.Random(7)
    texts = [toy_sentiment.review(rng) for _ in range(2)]
    extra = [{"input": text, "output": toy_sentiment.label(text)} for text in texts]
    created = await make_dataset(client, seeds=SEEDS + extra)
    assert created["held_out"] == 2  # default 20% of 12 seeds
    source_before = rows(home, DATASET)

    started = await amplify(client, server, target_size=60, concurrency=4)
    assert started["job"]["status"] in ("queued", "running")
    assert started["job"]["next_poll_s"] is not None
    assert (started["seeds"], started["target_size"], started["output_dataset"]) == (10, 60, OUTPUT)
    job_id = started["job"]["id"]

    view, events = await wait_job(client, job_id)
    assert view["status"] == "succeeded", explain(home, view)
    assert view["kind"] == "amplify" and view["error"] is None and view["attempts"] == 1
    assert view["progress"]["done"] == view["progress"]["total"] == 60 and view["progress"]["fraction"] == 1.0
    assert view["started_at"] and view["finished_at"] and view["finished_at"] >= view["started_at"]
    messages = [e["message"] for e in events]
    assert messages[0] == "amplify job queued"
    assert any("task policy extracted" in m for m in messages)
    assert messages[-1] == "job succeeded"

    result = view["result"]
    assert result["output_dataset"] == OUTPUT and result["stopped_reason"] == "target"
    assert result["total_examples"] == 60 and result["seeds_traced"] == 10
    assert result["accepted_train"] + result["accepted_test"] == 50
    assert result["teacher"]["calls"] >= 60 and result["teacher"]["calls"] <= server.calls
    assert view["metrics"]["teacher"]["calls"] == result["teacher"]["calls"]
    tally = view["metrics"]["examples"]  # kept up to date while the job ran: the last accept's counts
    assert {k: tally[k] for k in ("accepted_train", "accepted_test")} == {
        k: result[k] for k in ("accepted_train", "accepted_test")
    }
    assert set(tally) >= {"duplicates_dropped", "disagreements_dropped", "malformed_replies", "rejected"}

    out = rows(home, OUTPUT)
    seeds = [r for r in out if r["source"] == "seed" and r["split"] != "holdout"]
    held = [r for r in out if r["split"] == "holdout"]
    synthetic = [r for r in out if r["source"] == "synthetic"]
    assert len(seeds) == 10 and all(r["reasoning"] for r in seeds)
    train_seeds = {(r["input"], r["output"]) for r in source_before if r["split"] == "train"}
    assert {(r["input"], r["output"]) for r in seeds} == train_seeds  # gold outputs kept
    assert {r["input"] for r in held} == {r["input"] for r in source_before if r["split"] == "holdout"}
    assert len(synthetic) == 50 and all(r["reasoning"] and r["output"] in ("positive", "negative") for r in synthetic)
    assert all(r["output"] == toy_sentiment.label(r["input"]) for r in synthetic)
    test_rows = [r for r in synthetic if r["split"] == "test"]
    assert len(test_rows) == result["accepted_test"] > 0
    assert_no_near_duplicates([r["input"] for r in out])
    assert not {normalize(r["input"]) for r in synthetic} & {normalize(r["input"]) for r in held}
    assert rows(home, DATASET) == source_before  # the source is untouched

    detail = await call(client, "get_dataset", dataset=OUTPUT)
    assert detail["dataset"]["parent"] == DATASET
    assert detail["counts_by_split"]["test"] == len(test_rows)

    record = await read_json(client, f"nanodistill://jobs/{job_id}")
    assert record["id"] == job_id and record["status"] == "succeeded" and record["result"] == result
    later = await read_json(client, f"nanodistill://jobs/{job_id}/events?after=3")
    assert [e["seq"] for e in later["events"]] == [e["seq"] for e in events if e["seq"] > 3]
    assert later["events_cursor"] == events[-1]["seq"]
    log = (await client.read_resource(f"nanodistill://jobs/{job_id}/log?tail=5")).contents[0].text  # type: ignore[union-attr]
    assert 0 < len(log.splitlines()) <= 5

    # An ended job can be neither cancelled nor resumed; a wait_s out of range is refused.
    assert "already ended (succeeded)" in await call_error(client, "cancel_job", job_id=job_id)
    assert "cannot be resumed" in await call_error(client, "resume_job", job_id=job_id)
    for wait_s in (-1, 21):
        assert "'wait_s'" in await call_error(client, "get_job", job_id=job_id, wait_s=wait_s)
    # Amplifying again into the same output name is refused before any job starts.
    before = footprint(home)
    assert "already exists" in await call_error(
        client, "amplify_dataset", dataset=DATASET, teacher=server.model, api_base=server.url, target_size=20
    )
    assert footprint(home) == before


# -- a misbehaving teacher ---------------------------------------------------------------------------

# Two jobs cover the five fault modes (each job spawn costs seconds of imports): failed calls that are retried,
# and replies that are re-asked or skipped. Each counted fault applies to the next N calls, in this order.
FAULTS: dict[str, dict[str, Any]] = {
    "transport": {"rate_limit": 2, "retry_after_s": 0.5, "server_error": 2, "hang": 1, "hang_s": 1.5},
    "replies": {"malformed": 3, "empty": 3},
}


@pytest.mark.slow
@pytest.mark.parametrize("faults", list(FAULTS))
async def test_amplify_job_rides_out_a_misbehaving_teacher(
    client: Client, home: Path, server: TeacherServer, faults: str
) -> None:
    await make_dataset(client, holdout_fraction=0)
    server.faults.update(FAULTS[faults])
    started = await amplify(client, server, target_size=24, concurrency=4)
    view, _ = await wait_job(client, started["job"]["id"])
    assert view["status"] == "succeeded", explain(home, view)
    counted = [name for name in FAULTS[faults] if not name.endswith("_s")]
    assert all(getattr(server.faults, name) == 0 for name in counted), server.faults.snapshot()
    result = view["result"]
    assert result["total_examples"] == 24 and result["stopped_reason"] == "target"
    assert synthetic_count(home) == 14
    assert_no_near_duplicates([r["input"] for r in rows(home, OUTPUT)])
    if faults == "replies":
        # Each unreadable reply is sent back once for just the JSON; what the repair cannot fix is re-asked.
        teacher = result["teacher"]
        assert teacher["repairs"] >= 3 and teacher["repairs"] + result["malformed_replies"] >= 6, teacher
    else:
        assert result["teacher"]["retries"] >= 5
        log = (home / "artifacts" / "jobs" / view["id"] / "job.log").read_text()
        # Retry-After (0.5 s) honoured as given, plus at most 0.1 s of jitter
        assert re.search(r"rate limited \(429\); retry 1/6 in 0\.[56] s", log), log
        assert "(500)" in log and "(504)" in log  # server errors and a hung call, both retried


@pytest.mark.slow
async def test_amplify_job_fails_clearly_when_no_reply_can_be_read(
    client: Client, home: Path, server: TeacherServer
) -> None:
    await make_dataset(client, holdout_fraction=0)
    server.faults.update({"malformed": 10_000})
    started = await amplify(client, server, target_size=24, concurrency=2)
    view, events = await wait_job(client, started["job"]["id"])
    assert view["status"] == "failed", explain(home, view)
    assert "replies could not be read" in view["error"] and "stronger teacher" in view["error"]
    assert events[-1]["level"] == "error" and "replies could not be read" in events[-1]["message"]
    assert synthetic_count(home) == 0
    assert "cannot be resumed" not in await call_error(client, "cancel_job", job_id=view["id"])
    spent = view["metrics"]["teacher"]  # what the failed job asked of the teacher is still told
    # (the stand-in may also have seen a call that was in flight when the job stopped)
    assert 0 < spent["calls"] <= server.calls and spent["timeouts"] == 0


# -- cancel, kill -9, resume ---------------------------------------------------------------------------


@pytest.mark.slow
async def test_cancel_keeps_examples_and_resume_reaches_the_target(
    client: Client, home: Path, server: TeacherServer
) -> None:
    await make_dataset(client, holdout_fraction=0)
    server.faults.latency_s = 0.2
    job_id = (await amplify(client, server, target_size=60, concurrency=2))["job"]["id"]
    await wait_until(client, job_id, lambda v: v["status"] == "running" and v["progress"]["done"] >= 14)

    cancelling = await call(client, "cancel_job", job_id=job_id)
    assert cancelling["id"] == job_id and cancelling["status"] in ("queued", "running")
    view, _ = await wait_job(client, job_id, timeout=30)
    assert view["status"] == "cancelled", explain(home, view)
    assert "cancelled on request" in view["note"]
    kept = rows(home, OUTPUT)
    assert 4 <= sum(r["source"] == "synthetic" for r in kept) < 50
    assert "already ended (cancelled)" in (message := await call_error(client, "cancel_job", job_id=job_id))
    assert "resume_job continues it" in message

    server.faults.latency_s = 0.0
    resumed = await call(client, "resume_job", job_id=job_id)
    assert resumed["status"] in ("queued", "running") and resumed["next_poll_s"] is not None
    view, events = await wait_job(client, job_id)
    assert view["status"] == "succeeded", explain(home, view)
    assert view["attempts"] == 2 and view["result"]["total_examples"] == 60
    assert any(e["message"].startswith("resuming:") for e in events)
    after = rows(home, OUTPUT)
    assert sum(r["source"] == "synthetic" for r in after) == 50
    assert {r["input"] for r in kept} <= {r["input"] for r in after}  # nothing cancelled away
    assert_no_near_duplicates([r["input"] for r in after])
    assert "cannot be resumed" in await call_error(client, "resume_job", job_id=job_id)


@pytest.mark.slow
async def test_cancel_right_after_start_ends_cancelled_not_interrupted(
    client: Client, home: Path, server: TeacherServer
) -> None:
    """A job cancelled while its process is still starting must not be killed by the signal (it would end
    `interrupted` ten seconds later); it reads the cancel flag when it starts and ends `cancelled`."""
    await make_dataset(client, holdout_fraction=0)
    job_id = (await amplify(client, server, target_size=24, concurrency=4))["job"]["id"]
    assert (await call(client, "cancel_job", job_id=job_id))["status"] in ("queued", "running")
    view, events = await wait_job(client, job_id, timeout=60)
    assert view["status"] == "cancelled", explain(home, view)
    assert view["error"] is None and "cancelled on request" in view["note"]
    assert synthetic_count(home) == 0
    assert not any("process is gone" in e["message"] for e in events)


@pytest.mark.slow
async def test_killed_job_is_interrupted_then_resumes_from_the_cache(
    client: Client, home: Path, server: TeacherServer
) -> None:
    await make_dataset(client, holdout_fraction=0)
    server.faults.latency_s = 0.2
    job_id = (await amplify(client, server, target_size=60, concurrency=2))["job"]["id"]
    await wait_until(client, job_id, lambda v: v["status"] == "running" and v["progress"]["done"] >= 25)

    pid = job_pid(home, job_id)
    assert pid
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    view, events = await wait_until(client, job_id, lambda v: v["status"] != "running", timeout=40)
    assert view["status"] == "interrupted", explain(home, view)
    assert time.monotonic() - killed_at >= 8  # a stale heartbeat is needed, not just a dead pid
    assert "resume_job continues it" in events[-1]["message"]
    assert job_pid(home, job_id) is None
    kept = rows(home, OUTPUT)
    stored = sum(r["source"] == "synthetic" for r in kept)
    assert 15 <= stored < 50
    server.faults.latency_s = 0.0
    calls_before_resume = server.calls
    kinds_before_resume = dict(server.calls_by_kind)

    await call(client, "resume_job", job_id=job_id)
    view, events = await wait_job(client, job_id)
    assert view["status"] == "succeeded", explain(home, view)
    assert view["attempts"] == 2 and view["result"]["total_examples"] == 60
    after = rows(home, OUTPUT)
    assert sum(r["source"] == "synthetic" for r in after) == 50
    assert {r["input"] for r in kept} <= {r["input"] for r in after}
    assert_no_near_duplicates([r["input"] for r in after])
    assert not any(r["source"] == "seed" for r in after[len(kept) :]), "a seed was traced twice"

    # Traces and the policy came from the store, repeated calls from the cache: the resumed attempt asked
    # the teacher for neither, and made fewer network calls than a fresh job's minimum (10 traces,
    # 1 policy, 50 answers).
    totals = view["result"]["teacher"]
    resumed_calls = server.calls - calls_before_resume
    # The totals are the job's whole life (both attempts; a reply lost to the kill is not in the ledger).
    assert resumed_calls < totals["calls"] <= server.calls
    assert totals["cached_calls"] > 0
    for kind in ("trace", "policy"):
        assert server.calls_by_kind[kind] == kinds_before_resume.get(kind, 0), f"{kind} asked again"
    assert resumed_calls < 10 + 1 + 50
    assert server.calls_by_kind["answer"] - kinds_before_resume["answer"] <= 50 - stored


# -- budget, quote, secrets --------------------------------------------------------------------------


@pytest.mark.slow
async def test_budget_stops_the_job_cleanly_with_what_it_has(client: Client, home: Path, server: TeacherServer) -> None:
    await make_dataset(client, holdout_fraction=0)
    # The stand-in model has no LiteLLM price: price it per token so the budget applies (~0.002 USD a call).
    started = await amplify(
        client,
        server,
        target_size=60,
        concurrency=2,
        max_cost_usd=0.05,
        input_cost_per_token=1e-5,
        output_cost_per_token=2e-5,
    )
    view, events = await wait_job(client, started["job"]["id"])
    assert view["status"] == "succeeded", explain(home, view)
    assert "max_cost_usd=0.05" in view["note"]
    result = view["result"]
    assert result["stopped_reason"] == "budget" and result["note"] == view["note"]
    assert 10 <= result["total_examples"] < 60
    # The cap holds: no call starts that the dearest call of its kind so far says would pass it, so the
    # job stops within about one generation call (the dearest kind) below the cap.
    assert 0.05 * 0.7 <= view["cost_usd"] <= 0.05
    assert result["teacher"]["cost_usd"] == pytest.approx(view["cost_usd"], abs=1e-6)
    assert result["teacher"]["priced"] is True
    assert not any("cannot be enforced" in e["message"] for e in events)
    assert synthetic_count(home) == result["total_examples"] - 10
    assert view["progress"]["done"] == result["total_examples"] and view["progress"]["fraction"] < 1


async def test_price_must_not_be_negative(client: Client, home: Path, server: TeacherServer) -> None:
    await make_dataset(client, holdout_fraction=0)
    before = footprint(home)
    for field in ("input_cost_per_token", "output_cost_per_token"):
        message = await call_error(
            client, "amplify_dataset", dataset=DATASET, teacher=server.model, api_base=server.url, **{field: -1e-6}
        )
        assert f"'{field}'" in message and ">= 0" in message
    assert footprint(home) == before


async def test_dry_run_quotes_from_six_real_calls_and_starts_nothing(
    client: Client, home: Path, server: TeacherServer
) -> None:
    await make_dataset(client, holdout_fraction=0)
    before = footprint(home)
    quoted = await amplify(
        client, server, target_size=200, dry_run=True, input_cost_per_token=1e-6, output_cost_per_token=2e-6
    )
    assert quoted["job"] is None and quoted["target_size"] == 200 and quoted["seeds"] == 10
    assert server.calls == 6  # one trace alone, three at once (parallelism), a generation, an answer
    quote = quoted["quote"]
    assert quote["sample_calls"] == 6 and quote["cached_sample_calls"] == 0
    assert quote["projected_total_calls"] == sum(quote["projected_calls"].values())
    assert quote["projected_total_calls"] >= 10 + 1 + 190  # every seed traced, one policy, an answer per example
    assert quote["projected_prompt_tokens"] > 0 and quote["projected_completion_tokens"] > 0
    assert quote["priced"] is True
    expected_cost = quote["projected_prompt_tokens"] * 1e-6 + quote["projected_completion_tokens"] * 2e-6
    assert quote["projected_cost_usd"] == pytest.approx(expected_cost, rel=0.01)
    assert quote["mean_latency_s"] > 0 and quote["estimated_duration_s"] > 0

    # Unpriced, the same quote projects tokens but no cost, and says so; its sample calls come from the cache.
    again = (await amplify(client, server, target_size=200, dry_run=True))["quote"]
    assert server.calls == 6 and again["cached_sample_calls"] == 6
    assert again["projected_total_calls"] == quote["projected_total_calls"]
    assert again["priced"] is False and again["projected_cost_usd"] is None
    assert any("no price" in note for note in again["notes"]), again["notes"]
    assert footprint(home) == before  # no job, no output dataset


@pytest.mark.slow
async def test_no_key_material_is_stored_or_logged(
    client: Client, home: Path, server: TeacherServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-nd-" + "7f3a9c" * 6
    monkeypatch.setenv("ND_TEST_KEY", secret)
    monkeypatch.setenv("NANODISTILL_KEY_ENVS", "ND_TEST_KEY")  # the operator allows this variable
    monkeypatch.setenv("NANODISTILL_API_BASES", server.url)  # ... to be sent to this server
    await make_dataset(client, holdout_fraction=0)
    started = await amplify(client, server, target_size=20, concurrency=4, api_key_env="ND_TEST_KEY")
    assert started["job"] is not None
    view, _ = await wait_job(client, started["job"]["id"])
    assert view["status"] == "succeeded", explain(home, view)
    assert secret not in json.dumps(view)
    assert secret not in json.dumps(await call(client, "list_jobs"))
    files = [path for path in home.rglob("*") if path.is_file() and not path.is_symlink()]
    assert home / "nanodistill.db" in files
    assert home / "artifacts" / "jobs" / view["id"] / "job.log" in files
    for path in files:
        assert secret.encode() not in path.read_bytes(), f"the API key is in {path.relative_to(home)}"
    con = db(home)
    try:
        params = json.loads(con.execute("SELECT params FROM jobs").fetchone()[0])
    finally:
        con.close()
    assert params["api_key_env"] == "ND_TEST_KEY"  # the variable's name, never its value


# -- bad input -----------------------------------------------------------------------------------------


async def test_bad_amplify_requests_are_refused_before_any_job_starts(
    client: Client, home: Path, server: TeacherServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_dataset(client, holdout_fraction=0)
    await make_dataset(client, name="taken", seeds=SEEDS[:2], holdout_fraction=0)
    await make_dataset(client, name="all-held-out", seeds=SEEDS[:2], holdout_fraction=0)
    con = db(home)
    with con:
        con.execute(
            "UPDATE examples SET split = 'holdout' WHERE dataset_id = "
            "(SELECT id FROM datasets WHERE name = 'all-held-out')"
        )
    con.close()
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ND_UNSET_KEY", raising=False)
    local = {"teacher": server.model, "api_base": server.url}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"dataset": "nope", **local}, "no dataset"),
        ({"dataset": "all-held-out", **local}, "no seed examples"),
        ({"dataset": DATASET, **local, "target_size": 9}, "'target_size' must be between the seed count (10)"),
        ({"dataset": DATASET, **local, "target_size": 100_001}, "100,000"),
        ({"dataset": DATASET, **local, "augment_factor": 20_000}, "'augment_factor'"),
        ({"dataset": DATASET, **local, "concurrency": 0}, "'concurrency' must be between 1 and 64"),
        ({"dataset": DATASET, **local, "concurrency": 65}, "'concurrency' must be between 1 and 64"),
        ({"dataset": DATASET, **local, "temperature": 2.5}, "'temperature'"),
        ({"dataset": DATASET, **local, "max_cost_usd": 0}, "'max_cost_usd'"),
        ({"dataset": DATASET, **local, "test_fraction": 0.5}, "'test_fraction'"),
        ({"dataset": DATASET, **local, "self_consistency": 10}, "'self_consistency'"),
        ({"dataset": DATASET, "teacher": "no-such-model-xyz"}, "unknown teacher model 'no-such-model-xyz'"),
        ({"dataset": DATASET, "teacher": "  "}, "teacher model is empty"),
        ({"dataset": DATASET, "teacher": "anthropic/claude-3-5-haiku-latest"}, "ANTHROPIC_API_KEY"),
        ({"dataset": DATASET, **local, "api_key_env": "ND_UNSET_KEY"}, "ND_UNSET_KEY"),
        (
            {"dataset": DATASET, "teacher": server.model, "api_base": f"http://127.0.0.1:{closed_port()}/v1"},
            "unreachable",
        ),
        ({"dataset": DATASET, "teacher": server.model, "api_base": "ftp://example.invalid"}, "not an http(s) URL"),
        ({"dataset": DATASET, **local, "output_dataset": "taken"}, "'output_dataset': a dataset named 'taken'"),
        ({"dataset": DATASET, **local, "output_dataset": "bad name!"}, "'output_dataset'"),
    ]
    before = footprint(home)
    for args, expected in cases:
        message = await call_error(client, "amplify_dataset", **args)
        assert expected in message, (args, message)
        assert footprint(home) == before, args
    assert server.calls == 0


async def test_job_tools_refuse_unknown_ids_and_bad_arguments(client: Client, home: Path) -> None:
    for tool in ("get_job", "cancel_job", "resume_job"):
        message = await call_error(client, tool, job_id="job_doesnotexist")
        assert "no job 'job_doesnotexist'" in message and "list_jobs" in message
    assert "'wait_s'" in await call_error(client, "get_job", job_id="job_doesnotexist", wait_s=20.5)
    assert "'events_after'" in await call_error(client, "get_job", job_id="job_doesnotexist", events_after=-1)
    assert "'limit'" in await call_error(client, "list_jobs", limit=0)
    assert "'cursor'" in await call_error(client, "list_jobs", cursor="not-a-cursor")


# -- listing -----------------------------------------------------------------------------------------------


async def test_list_jobs_filters_by_status_and_kind_and_paginates(client: Client, home: Path) -> None:
    await call(client, "list_jobs")  # opens the database
    made = [
        ("job_a1", "amplify", "succeeded"),
        ("job_a2", "amplify", "failed"),
        ("job_a3", "amplify", "succeeded"),
        ("job_t1", "train", "succeeded"),
        ("job_t2", "train", "cancelled"),
        ("job_e1", "evaluate", "interrupted"),
        ("job_a4", "amplify", "cancelled"),
    ]
    con = db(home)
    with con:
        for i, (job_id, kind, status) in enumerate(made):
            con.execute(
                "INSERT INTO jobs (id, kind, status, params, created_at, finished_at) VALUES (?, ?, ?, '{}', ?, ?)",
                (job_id, kind, status, 1_000.0 + i, 1_000.5 + i),
            )
    con.close()
    newest_first = [job_id for job_id, _, _ in reversed(made)]

    everything = await call(client, "list_jobs")
    assert [j["id"] for j in everything["jobs"]] == newest_first and everything["next_cursor"] is None
    assert all(j["events"] == [] and j["next_poll_s"] is None for j in everything["jobs"])

    def ids(page: dict[str, Any]) -> list[str]:
        return [j["id"] for j in page["jobs"]]

    assert ids(await call(client, "list_jobs", status="succeeded")) == ["job_t1", "job_a3", "job_a1"]
    assert ids(await call(client, "list_jobs", kind="train")) == ["job_t2", "job_t1"]
    assert ids(await call(client, "list_jobs", kind="amplify", status="cancelled")) == ["job_a4"]
    assert ids(await call(client, "list_jobs", status="running")) == []

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await call(client, "list_jobs", limit=3, **({"cursor": cursor} if cursor else {}))
        seen += ids(page)
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == newest_first and pages == 3

    page = await call(client, "list_jobs", kind="amplify", limit=2)
    assert ids(page) == ["job_a4", "job_a3"]
    page = await call(client, "list_jobs", kind="amplify", limit=2, cursor=page["next_cursor"])
    assert ids(page) == ["job_a2", "job_a1"] and page["next_cursor"] is None
    assert "status" in await call_error(client, "list_jobs", status="done")
