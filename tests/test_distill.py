"""The conversation end to end: `distill` as Claude Desktop drives it over stdio, cancel and resume in
the training stage, every input problem in one error, the Python `distill()`, prompts and the server
instructions.

The teacher is the stand-in server (running in this test process, reached through LiteLLM by the job
processes); the student is the tiny random-weight model, so each pipeline run takes seconds.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from nanodistill.api import DistillResult, distill
from nanodistill.testing.teacher_server import TeacherServer
from nanodistill.testing.tiny_student import build_tiny_student
from nanodistill.testing.toy_sentiment import INSTRUCTION
from nanodistill.testing.toy_sentiment import examples as toy_examples
from server.app import build_server
from tests.mcp_helpers import call, call_error, wait_job

pytestmark = pytest.mark.anyio

TRAINING: dict[str, Any] = {"iters": 30, "num_layers": -1, "learning_rate": 3e-4, "reasoning": "none"}
TARGET_SIZE = 80
STAGES = ("amplify", "train", "evaluate")


SEEDS = toy_examples(12, seed=1, balanced=True)


@pytest.fixture
def student(tmp_path: Path) -> Path:
    return build_tiny_student(tmp_path / "tiny")


def distill_arguments(name: str, server: TeacherServer, student: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "name": name,
        "seeds": SEEDS,
        "instruction": INSTRUCTION,
        "teacher": server.model,
        "api_base": server.url,
        "student": str(student),
        "target_size": TARGET_SIZE,
        "training": TRAINING,
        **overrides,
    }


def train_metrics(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["level"] == "metric" and e["data"].get("kind") == "train"]


def children(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {c["kind"]: c for c in view["children"]}
    assert len(found) == len(view["children"]), f"a stage ran as two child jobs: {view['children']}"
    return found


def db_rows(home: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(home / "nanodistill.db") as db:
        return db.execute(sql, params).fetchall()


def count(home: Path, table: str) -> int:
    return int(db_rows(home, f"SELECT COUNT(*) FROM {table}")[0][0])


def prompt_text(result: Any) -> str:
    return "\n".join(m.content.text for m in result.messages)


def server_command() -> list[str]:
    """The installed console script, as a host config names it; `python -m server.main` if it is missing."""
    script = Path(sys.executable).parent / "nanodistill-mcp"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "server.main"]


# --- the whole conversation over stdio ----------------------------------------------------------------


@pytest.mark.slow
async def test_distill_over_stdio_as_claude_desktop_drives_it(
    home: Path, tmp_path: Path, server: TeacherServer, student: Path
) -> None:
    command = server_command()
    params = StdioServerParameters(
        command=command[0],
        args=command[1:],
        env={
            "NANODISTILL_HOME": str(home),
            "NANODISTILL_IMPORT_ROOTS": str(tmp_path),
            "NANODISTILL_BLAS_CACHE": os.environ["NANODISTILL_BLAS_CACHE"],
        },
        cwd=str(tmp_path),
    )
    async with Client(params, read_timeout_seconds=60) as client:
        assert "get_job" in (client.instructions or "")
        assert "distill" in {t.name for t in (await client.list_tools()).tools}

        job = await call(client, "distill", **distill_arguments("toy", server, student))
        assert job["kind"] == "distill" and job["status"] in ("queued", "running") and job["next_poll_s"]

        views: list[dict[str, Any]] = []
        done, events = await wait_job(client, job["id"], views=views)
        assert done["status"] == "succeeded", done
        assert done["error"] is None and done["attempts"] == 1

        # every stage ran as a child job that succeeded, and the parent announced each one
        stages = children(done)
        assert set(stages) == set(STAGES)
        assert all(c["status"] == "succeeded" for c in stages.values()), stages
        announced = [e["data"]["stage"] for e in events if e["data"].get("stage")]
        assert announced == list(STAGES), events
        assert any("stage 2/3" in e["message"] for e in events)
        assert events[-1]["message"] == "job succeeded"

        # progress only moves forward, is seen part way, and ends complete; cost is accounted
        fractions = [v["progress"]["fraction"] or 0.0 for v in views]
        assert fractions == sorted(fractions), fractions
        assert any(0 < f < 1 for f in fractions), fractions
        assert done["progress"] == {"done": 100.0, "total": 100.0, "fraction": 1.0}
        assert done["cost_usd"] == 0.0  # the stand-in teacher is unpriced: counted, and free
        amplify = await call(client, "get_job", job_id=stages["amplify"]["id"])
        assert amplify["parent_id"] == job["id"] and amplify["cost_usd"] == 0.0
        assert amplify["result"]["total_examples"] >= TARGET_SIZE * 0.9, amplify["result"]
        assert server.calls > len(SEEDS)

        result = done["result"]
        assert result["dataset"] == "toy" and result["amplified_dataset"] == "toy-amplified"
        assert result["amplify"]["total_examples"] == amplify["result"]["total_examples"]
        assert result["training"]["iterations_done"] == TRAINING["iters"]
        card = result["report_card"]
        assert card["n_test"] > 0 and card["student_score"] is not None and card["base_score"] is not None
        model_id = result["model_id"]
        assert result["card"] == f"nanodistill://models/{model_id}/card"

        markdown = (await client.read_resource(result["card"])).contents[0].text  # type: ignore[union-attr]
        assert markdown.startswith("# toy\n\n# Student report card")
        # distill evaluates against the untrained base and a student trained on the seeds alone
        assert result["baselines"] == ["base", "seeds_only"] and card["seeds_only_score"] is not None
        assert "## Scores" in markdown and "| source | examples | metric | base | seeds-only | student |" in markdown
        assert "holdout seeds" in markdown

        model = await call(client, "get_model", model="toy")
        assert model["id"] == model_id and model["base_model"] == str(student.resolve())

        answered = await call(
            client,
            "query_student",
            model=model_id,
            prompts=["The blender was great.", "The kettle was awful."],
            max_tokens=8,
        )
        assert len(answered["answers"]) == 2
        assert all(isinstance(a["answer"], str) for a in answered["answers"])


# --- cancel in the training stage, then resume -------------------------------------------------------


@pytest.mark.slow
async def test_cancel_in_training_then_resume_skips_amplification(
    client: Client, home: Path, server: TeacherServer, student: Path
) -> None:
    training = {**TRAINING, "iters": 400, "steps_per_eval": 50, "save_every": 25}
    job = await call(client, "distill", **distill_arguments("long", server, student, training=training))

    running, _ = await wait_job(
        client, job["id"], until=lambda view, events: "train" in {c["kind"] for c in view["children"]}
    )
    train_id = children(running)["train"]["id"]
    await wait_job(
        client, train_id, until=lambda view, events: any(m["iteration"] >= 10 for m in train_metrics(events))
    )
    calls_after_amplify = server.calls
    assert calls_after_amplify > 0

    asked = await call(client, "cancel_job", job_id=job["id"])
    assert asked["status"] in ("queued", "running")
    cancelled, _ = await wait_job(client, job["id"], timeout=60)
    assert cancelled["status"] == "cancelled", cancelled
    stages = children(cancelled)
    assert stages["amplify"]["status"] == "succeeded"
    assert stages["train"]["status"] == "cancelled" and "evaluate" not in stages
    stopped = await call(client, "get_job", job_id=train_id)
    assert stopped["status"] == "cancelled" and stopped["attempts"] == 1
    reached = stopped["result"]["iterations_done"]
    assert 10 <= reached < 400, stopped
    assert (await call(client, "list_models"))["models"] == []

    message = await call_error(client, "resume_job", job_id=train_id)
    assert job["id"] in message  # a stage is resumed through its distill job

    resumed = await call(client, "resume_job", job_id=job["id"])
    assert resumed["id"] == job["id"] and resumed["status"] in ("queued", "running")
    done, events = await wait_job(client, job["id"], after=cancelled["events_cursor"])
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2

    # amplification was not run again: same single child, one attempt, no new teacher calls
    stages = children(done)
    assert set(stages) == set(STAGES) and stages["train"]["id"] == train_id
    assert all(c["status"] == "succeeded" for c in stages.values()), stages
    amplify = await call(client, "get_job", job_id=stages["amplify"]["id"])
    assert amplify["attempts"] == 1
    assert server.calls == calls_after_amplify
    assert [e["data"]["stage"] for e in events if e["data"].get("stage")][-2:] == ["train", "evaluate"]
    assert count(home, "jobs") == 4

    # training went on from its checkpoint, not from the start
    train, more = await wait_job(client, train_id, after=stopped["events_cursor"])
    assert train["status"] == "succeeded" and train["attempts"] == 2
    first = train_metrics(more)[0]["iteration"]
    assert reached < first <= reached + 25 + 10, (reached, first)  # the last checkpoint, then the next report
    assert train["result"]["iterations_done"] == 400
    model = await call(client, "get_model", model="long")
    assert model["id"] == done["result"]["model_id"] and model["metrics"]["iterations_done"] == 400


# --- all problems at once -----------------------------------------------------------------------------


async def test_every_problem_is_reported_in_one_error_and_nothing_is_created(
    client: Client, home: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-student"
    message = await call_error(
        client,
        "distill",
        name="bad name!",
        seeds=SEEDS,
        instruction="  ",
        teacher="no-such-provider-model-xyz",
        student=str(missing),
        target_size=3,
        training={"iter": 30},
    )
    assert "distill cannot start (6 problems)" in message, message
    for words in (
        ("'name'", "bad name!"),
        ("'instruction' is empty",),
        ("unknown teacher model", "no-such-provider-model-xyz"),
        (str(missing), "does not exist"),
        ("'iter'", "did you mean 'iters'"),
        ("'target_size'", "(10)", "got 3"),
    ):
        assert all(word in message for word in words), (words, message)
    assert "Traceback" not in message
    assert (await call(client, "list_datasets"))["datasets"] == []
    assert (await call(client, "list_jobs"))["jobs"] == []
    assert count(home, "datasets") == count(home, "examples") == count(home, "jobs") == 0


async def test_a_missing_student_is_reported_with_bad_training_options(
    client: Client, home: Path, tmp_path: Path
) -> None:
    """The student check does not depend on the training options being readable."""
    missing = tmp_path / "no-such-student"
    message = await call_error(
        client,
        "distill",
        name="toy",
        seeds=SEEDS,
        instruction=INSTRUCTION,
        student=str(missing),
        training={"iter": 30},
        training_data=SEEDS,
    )
    assert "2 problems" in message and str(missing) in message and "'iters'" in message, message
    assert count(home, "jobs") == 0


async def test_a_name_in_use_is_refused_before_anything_is_written(client: Client, home: Path, student: Path) -> None:
    await call(client, "create_dataset", name="taken", examples=SEEDS, instruction=INSTRUCTION)
    message = await call_error(
        client,
        "distill",
        name="taken",
        seeds=SEEDS,
        instruction=INSTRUCTION,
        student=str(student),
        training_data=toy_examples(40, seed=3, balanced=True),
    )
    assert "'taken' already exists" in message, message
    assert count(home, "datasets") == 1 and count(home, "jobs") == 0


# --- distill() from Python ----------------------------------------------------------------------------


def test_unknown_keyword_names_the_closest() -> None:
    with pytest.raises(TypeError, match=r"'teachr' \(did you mean 'teacher'\?\)"):
        distill(name="x", seed=SEEDS, instruction=INSTRUCTION, teachr="openai/gpt-4o-mini")
    with pytest.raises(TypeError, match=r"'augment' \(did you mean 'augment_factor'\?\)"):
        distill(name="x", augment=3)


@pytest.mark.slow
def test_distill_from_python(home: Path, tmp_path: Path, server: TeacherServer, student: Path) -> None:
    out = tmp_path / "outputs"
    seen: list[tuple[str, str | None]] = []
    result = distill(
        name="py-toy",
        seed=SEEDS,
        instruction=INSTRUCTION,
        teacher=server.model,
        student=str(student),
        output_dir=out,
        api_base=server.url,
        target_size=TARGET_SIZE,
        training=TRAINING,
        on_progress=lambda job: seen.append((job.status, job.stage)),
    )
    assert isinstance(result, DistillResult)
    assert result.model_name == "py-toy" and result.base_model == str(student.resolve())
    assert result.model_path == out / "py-toy" / "adapter"
    assert (result.model_path / "adapters.safetensors").is_file()
    assert (result.model_path / "adapter_config.json").is_file()
    assert not (result.model_path / "checkpoints").exists()
    assert result.report_card is not None and result.report_card["sources"]
    assert result.metrics["iterations_done"] == TRAINING["iters"]
    assert result.metrics["job"]["model_id"] == result.model_id
    assert (out / "py-toy" / "report_card.md").read_text(encoding="utf-8") == result.card_markdown
    assert result.card_markdown.startswith("# Student report card")
    assert json.loads((out / "py-toy" / "metrics.json").read_text(encoding="utf-8"))["iterations_done"] == 30
    assert seen[-1][0] == "succeeded" and {s for _, s in seen} >= set(STAGES), seen
    kinds = [k for (k,) in db_rows(home, "SELECT kind FROM jobs WHERE parent_id = ?", (result.job_id,))]
    assert sorted(kinds) == sorted(STAGES)

    # training_data skips amplification: no teacher, no amplify stage, no amplified dataset
    calls = server.calls
    direct = distill(
        name="py-direct",
        seed=SEEDS,
        instruction=INSTRUCTION,
        student=str(student),
        output_dir=out,
        training_data=toy_examples(60, seed=5, balanced=True),
        training=TRAINING,
    )
    assert (direct.model_path / "adapters.safetensors").is_file()
    assert (out / "py-direct" / "report_card.md").is_file() and (out / "py-direct" / "metrics.json").is_file()
    kinds = [k for (k,) in db_rows(home, "SELECT kind FROM jobs WHERE parent_id = ?", (direct.job_id,))]
    assert sorted(kinds) == ["evaluate", "train"]
    assert server.calls == calls
    assert db_rows(home, "SELECT 1 FROM datasets WHERE name = 'py-direct-amplified'") == []
    assert direct.report_card is not None and direct.report_card["sources"]


# --- prompts and instructions -------------------------------------------------------------------------


async def test_prompts_are_listed_and_the_workflow_names_the_task(client: Client) -> None:
    prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    assert {"distill_workflow", "improve_student"} <= set(prompts)
    assert [a.name for a in prompts["distill_workflow"].arguments or []] == ["task_description"]
    assert [a.name for a in prompts["improve_student"].arguments or []] == ["model"]

    task = "route support tickets to billing, shipping or technical"
    text = prompt_text(await client.get_prompt("distill_workflow", {"task_description": task}))
    assert task in text
    for word in ("create_dataset", "dry_run", "distill", "get_job", "events_after", "query_student", "/card"):
        assert word in text, word


async def test_improve_student_on_an_unknown_model_errors(client: Client) -> None:
    with pytest.raises(MCPError, match="no model 'ghost'"):
        await client.get_prompt("improve_student", {"model": "ghost"})


@pytest.mark.slow
async def test_improve_student_quotes_the_worst_examples_of_the_card(client: Client, home: Path, student: Path) -> None:
    job = await call(
        client,
        "distill",
        name="toy",
        seeds=SEEDS,
        instruction=INSTRUCTION,
        student=str(student),
        training_data=toy_examples(60, seed=5, balanced=True),
        training=TRAINING,
    )
    done, _ = await wait_job(client, job["id"])
    assert done["status"] == "succeeded", done
    model = await call(client, "get_model", model="toy")
    [(stored,)] = db_rows(home, "SELECT report FROM models WHERE name = 'toy'")
    report = json.loads(stored)
    worst = [(s["name"], row) for s in report["sources"] for row in s["worst"][:5]]
    assert worst, report

    text = prompt_text(await client.get_prompt("improve_student", {"model": "toy"}))
    assert model["id"] in text and str(report["verdict"]) in text
    for name, row in worst:
        assert f"[{name}] input: {row['input']!r}" in text, (row, text)
        assert f"expected: {row['gold']!r}" in text and f"student: {row['student']!r}" in text
    assert "add_examples" in text and "train_student" in text
    assert "iterations 30" in text


async def test_server_instructions_say_how_to_follow_jobs(home: Path) -> None:
    async with Client(build_server()) as client:
        instructions = client.instructions or ""
    for word in ("get_job", "wait_s", "events_after", "distill", "dry_run", "cancel_job", "resume_job"):
        assert word in instructions, word
