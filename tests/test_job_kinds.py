"""The table of job kinds and the contract each kind's plan keeps, through the MCP tools.

Each drift bug the table ended (distill checking or passing on less than the tools it chains,
a kind the tools did not list, concurrent resumes) has its test here.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any, get_args

import pytest
from mcp import Client

from nanodistill.kinds import KINDS
from nanodistill.store.jobs import JobKindName
from nanodistill.testing.gguf_files import damaged_gguf
from nanodistill.testing.teacher_server import TeacherServer
from nanodistill.testing.tiny_student import build_tiny_student
from nanodistill.testing.toy_sentiment import INSTRUCTION
from nanodistill.testing.toy_sentiment import examples as toy_examples
from tests.mcp_helpers import FAST_TRAINING, call, call_error, wait_job

pytestmark = pytest.mark.anyio

SEEDS = toy_examples(12, seed=5, balanced=True)


def count(home: Path, table: str) -> int:
    with sqlite3.connect(home / "nanodistill.db") as con:
        return int(con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


@pytest.fixture
def student(tmp_path: Path) -> Path:
    return build_tiny_student(tmp_path / "tiny")


async def test_every_kind_has_one_row_and_the_tools_list_them_all(client: Client) -> None:
    assert set(KINDS) == set(get_args(JobKindName))
    for name, kind in KINDS.items():
        assert kind.name == name and kind.handler.count(":") == 1
    tools = {t.name: t for t in (await client.list_tools()).tools}
    listed = tools["list_jobs"].input_schema["properties"]["kind"]
    enum = next(option["enum"] for option in listed["anyOf"] if "enum" in option)
    assert set(enum) == set(KINDS)
    assert (await call(client, "list_jobs", kind="import"))["jobs"] == []


async def test_train_student_schema_comes_from_the_options_table(client: Client) -> None:
    """Bounds and help from the one table reach the schema a client sees."""
    tools = {t.name: t for t in (await client.list_tools()).tools}
    props = tools["train_student"].input_schema["properties"]
    assert props["batch_size"]["minimum"] == 1 and props["batch_size"]["maximum"] == 256
    assert props["batch_size"]["default"] == 4 and "examples per step" in props["batch_size"]["description"]
    assert "exclusiveMinimum" in props["learning_rate"]
    assert set(tools["train_student"].input_schema["required"]) == {"dataset", "base_model"}


async def test_distill_refuses_a_damaged_gguf_before_any_row_exists(
    client: Client, home: Path, tmp_path: Path, student: Path
) -> None:
    from nanodistill.gguf.export import export_gguf

    good = export_gguf(student, tmp_path / "student.gguf", name="student")
    bad = damaged_gguf(good, tmp_path / "damaged.gguf", "header-cut")
    for tool, arguments in (
        (
            "distill",
            {"name": "g", "seeds": SEEDS, "instruction": INSTRUCTION, "student": str(bad), "training_data": SEEDS},
        ),
        ("train_student", {"dataset": "nope", "base_model": str(bad)}),
    ):
        message = await call_error(client, tool, **arguments)
        assert str(bad) in message and any(w in message for w in ("GGUF", "truncated", "corrupt")), message
    assert count(home, "jobs") == count(home, "datasets") == 0


@pytest.mark.slow
async def test_distill_with_an_unpriced_teacher_stops_at_the_budget(
    client: Client, home: Path, server: TeacherServer, student: Path
) -> None:
    """The stand-in teacher is unknown to LiteLLM: only the prices distill passes on let the budget hold."""
    budget = 0.002
    job = await call(
        client,
        "distill",
        name="budgeted",
        seeds=SEEDS,
        instruction=INSTRUCTION,
        teacher=server.model,
        api_base=server.url,
        student=str(student),
        target_size=400,
        max_cost_usd=budget,
        input_cost_per_token=1e-6,
        output_cost_per_token=1e-6,
        training={**FAST_TRAINING, "iters": 4},
    )
    view, _ = await wait_job(client, job["id"], timeout=400)
    amplify = next(c for c in view["children"] if c["kind"] == "amplify")
    stage = await call(client, "get_job", job_id=amplify["id"])
    assert stage["result"]["stopped_reason"] == "budget", stage["result"]
    assert stage["result"]["total_examples"] < 400
    assert 0 < stage["cost_usd"] <= budget  # the cap holds, whatever the teacher concurrency


@pytest.mark.slow
async def test_concurrent_resumes_start_one_process(client: Client, home: Path, server: TeacherServer) -> None:
    await call(client, "create_dataset", name="reviews", examples=SEEDS, instruction=INSTRUCTION, holdout_fraction=0)
    server.faults.latency_s = 0.2
    started = await call(
        client,
        "amplify_dataset",
        dataset="reviews",
        teacher=server.model,
        api_base=server.url,
        target_size=40,
        concurrency=2,
    )
    job_id = started["job"]["id"]

    def running(view: dict[str, Any], _: list[dict[str, Any]]) -> bool:
        return view["status"] == "running" and view["progress"]["done"] >= 14

    await wait_job(client, job_id, until=running)
    with sqlite3.connect(home / "nanodistill.db") as con:
        pid = con.execute("SELECT pid FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
    os.kill(pid, signal.SIGKILL)
    view, _ = await wait_job(client, job_id, timeout=60)
    assert view["status"] == "interrupted"
    server.faults.latency_s = 0.0

    outcomes = await asyncio.gather(*(client.call_tool("resume_job", {"job_id": job_id}) for _ in range(5)))
    accepted = [o for o in outcomes if not o.is_error]
    refused = [" ".join(getattr(c, "text", "") for c in o.content) for o in outcomes if o.is_error]
    assert len(accepted) == 1, refused
    assert all("cannot be resumed" in text for text in refused), refused
    view, events = await wait_job(client, job_id)
    assert view["status"] == "succeeded" and view["attempts"] == 2
    assert sum(e["message"].startswith("job succeeded") for e in events) == 1
    with sqlite3.connect(home / "nanodistill.db") as con:
        inputs = [
            r[0]
            for r in con.execute(
                "SELECT input FROM examples JOIN datasets d ON d.id = dataset_id WHERE d.name = 'reviews-amplified'"
            )
        ]
    assert len(inputs) == 40 and len(set(inputs)) == 40
