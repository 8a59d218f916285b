"""improve_student through the MCP tools: one round end to end on the tiny student and the stand-in teacher
(the new dataset version leaks no held-out input; the next model is scored on the same held-out rows; the
budget ends the job keeping the best so far), and every bad input reported before a job starts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from nanodistill.evaluate.report import ExampleResult, ReportCard, build_source_card
from nanodistill.improve.patterns import failure_modes, pick_seeds
from nanodistill.store import models as models_db
from nanodistill.store.db import Store
from nanodistill.testing.teacher_server import TeacherServer
from nanodistill.testing.tiny_student import build_tiny_student
from nanodistill.testing.toy_sentiment import INSTRUCTION
from nanodistill.testing.toy_sentiment import examples as toy_examples
from nanodistill.train.data import TrainRow
from tests.mcp_helpers import FAST_TRAINING, call, call_error, wait_job

pytestmark = pytest.mark.anyio

TRAINING: dict[str, Any] = {**FAST_TRAINING, "iters": 30}


@pytest.fixture
def student(tmp_path: Path) -> Path:
    return build_tiny_student(tmp_path / "tiny")


def teacher_of(server: TeacherServer) -> dict[str, Any]:
    return {"teacher": server.model, "api_base": server.url}


def rows(home: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(home / "nanodistill.db") as db:
        return db.execute(sql, params).fetchall()


def inputs(home: Path, dataset: str, train: bool) -> list[str]:
    split = "e.split = 'train'" if train else "e.split != 'train'"
    sql = "SELECT e.input FROM examples e JOIN datasets d ON d.id = e.dataset_id WHERE d.name = ? AND "
    return [r[0] for r in rows(home, sql + split + " ORDER BY e.position", dataset)]


async def add_model(home: Path, name: str, kind: models_db.ModelKind, student: Path) -> None:
    """A model row without a report card, written the way the train job and base imports write theirs."""
    store = await Store.open(home / "nanodistill.db")
    try:
        async with store.write() as db:
            await models_db.insert_model(db, name=name, kind=kind, base_model=str(student), params=TRAINING)
    finally:
        await store.close()


async def distill_toy(client: Client, student: Path) -> None:
    """Model `toy`, distilled and carded: the starting point of an improvement round."""
    job = await call(
        client,
        "distill",
        name="toy",
        seeds=toy_examples(30, seed=1, balanced=True),
        instruction=INSTRUCTION,
        student=str(student),
        training_data=toy_examples(40, seed=5, balanced=True),
        training=TRAINING,
    )
    done, _ = await wait_job(client, job["id"])
    assert done["status"] == "succeeded", done


@pytest.mark.slow
async def test_a_round_targets_the_failures_leaks_nothing_and_keeps_the_better_model(
    client: Client, home: Path, server: TeacherServer, student: Path
) -> None:
    await distill_toy(client, student)

    job = await call(client, "improve_student", model="toy", examples_per_round=16, max_rounds=1, **teacher_of(server))
    assert job["kind"] == "improve"
    done, _ = await wait_job(client, job["id"])
    assert done["status"] == "succeeded", done
    result = done["result"]
    [round_one] = result["rounds"]
    assert round_one["dataset"] == "toy-r1" and round_one["added"] > 0, result
    assert round_one["failure_modes"]["total"] == len(inputs(home, "toy", train=False))
    assert [c["model_name"] for c in result["cards"]] == ["toy", "toy-r1"]
    assert result["model_id"] in {c["model_id"] for c in result["cards"]}
    assert result["improved"] == round_one["versus_best"]["improved"]
    assert result["improved"] or "did not improve" in result["note"]
    toy_ready = json.loads(rows(home, "SELECT report FROM models WHERE name = 'toy'")[0][0])["ready"]
    assert round_one["trained_from"] == ("toy" if toy_ready else "base")  # start_from auto follows the card

    held_out = inputs(home, "toy", train=False)
    assert held_out and inputs(home, "toy-r1", train=False) == held_out
    new_train = inputs(home, "toy-r1", train=True)
    assert set(inputs(home, "toy", train=True)) <= set(new_train)
    assert len(new_train) > len(inputs(home, "toy", train=True))
    assert not set(held_out) & set(new_train), "a held-out input reached the new training set"
    [(parent,)] = rows(
        home, "SELECT p.name FROM datasets d JOIN datasets p ON p.id = d.parent_id WHERE d.name = ?", "toy-r1"
    )
    assert parent == "toy"

    cards = {
        name: json.loads(rows(home, "SELECT report FROM models WHERE name = ?", name)[0][0])
        for name in ("toy", "toy-r1")
    }
    scored = {name: {e["input"] for e in card["sources"][0]["examples"]} for name, card in cards.items()}
    assert scored["toy"] == scored["toy-r1"], "the next round was scored on other rows"

    # The budget spent before the first round ends the job, keeping the model it started from.
    job = await call(
        client,
        "improve_student",
        model="toy-r1",
        max_cost_usd=1e-9,
        input_cost_per_token=0.01,
        output_cost_per_token=0.01,
        **teacher_of(server),
    )
    done, _ = await wait_job(client, job["id"])
    assert done["status"] == "succeeded", done
    assert "budget" in done["result"]["note"] and done["result"]["model_id"] == round_one["model_id"]
    assert not done["result"]["improved"]
    assert not rows(home, "SELECT 1 FROM datasets WHERE name = 'toy-r1-r1'"), "an empty round left its dataset"


async def test_an_unknown_model_is_named(client: Client, server: TeacherServer) -> None:
    error = await call_error(client, "improve_student", model="ghost", **teacher_of(server))
    assert "no model 'ghost'" in error


async def test_a_model_without_a_card_asks_for_evaluate_student_first(
    client: Client, home: Path, server: TeacherServer, student: Path
) -> None:
    await add_model(home, "uncarded", "trained", student)
    error = await call_error(client, "improve_student", model="uncarded", **teacher_of(server))
    assert "run evaluate_student first" in error


async def test_a_base_model_is_refused(client: Client, home: Path, server: TeacherServer, student: Path) -> None:
    await add_model(home, "plain-base", "base", student)
    error = await call_error(client, "improve_student", model="plain-base", **teacher_of(server))
    assert "is a base model" in error


async def test_every_bad_limit_is_reported_at_once(client: Client, server: TeacherServer) -> None:
    error = await call_error(
        client,
        "improve_student",
        model="ghost",
        examples_per_round=0,
        max_rounds=11,
        max_cost_usd=0,
        **teacher_of(server),
    )
    for field in ("no model 'ghost'", "'examples_per_round'", "'max_rounds'", "'max_cost_usd'"):
        assert field in error, (field, error)
    assert not (await call(client, "list_jobs"))["jobs"]


def test_the_teacher_hears_failure_patterns_never_held_out_rows() -> None:
    held_out = toy_examples(12, seed=3, balanced=True)
    examples = [
        ExampleResult(
            index=i,
            input=e["input"],
            gold=e["output"],
            student="positive",
            student_score=float(e["output"] == "positive"),
        )
        for i, e in enumerate(held_out)
    ]
    card = ReportCard.model_construct(sources=[build_source_card("holdout seeds", "label", examples, 0)])
    modes = failure_modes(card)
    hint = modes.hint()
    assert modes.failing == 6 and modes.missed == {"negative": 6}
    assert "'negative': missed 6 times (it answered 'positive' instead)" in hint
    assert not [e["input"] for e in held_out if e["input"] in hint or e["input"] in str(modes.describe())]

    train = [TrainRow(e["input"], e["output"], None) for e in toy_examples(30, seed=4, balanced=True)]
    seeds = pick_seeds(train, modes)
    assert len(seeds) == 12 and seeds[0].output == "negative"
    assert {s.output for s in seeds} == {"negative", "positive"}, "the closed label set must stay whole"


@pytest.mark.slow
async def test_a_cancelled_round_resumes_without_asking_the_teacher_again(
    client: Client, home: Path, server: TeacherServer, student: Path
) -> None:
    await distill_toy(client, student)

    job = await call(
        client,
        "improve_student",
        model="toy",
        examples_per_round=16,
        max_rounds=1,
        start_from="previous",
        **teacher_of(server),
    )
    await wait_job(client, job["id"], until=lambda view, events: "train" in {c["kind"] for c in view["children"]})
    calls_before = server.calls
    await call(client, "cancel_job", job_id=job["id"])
    cancelled, _ = await wait_job(client, job["id"], timeout=60)
    assert cancelled["status"] == "cancelled", cancelled

    resumed = await call(client, "resume_job", job_id=job["id"])
    assert resumed["id"] == job["id"]
    done, _ = await wait_job(client, job["id"], after=cancelled["events_cursor"])
    assert done["status"] == "succeeded" and done["attempts"] == 2, done
    [round_one] = done["result"]["rounds"]
    assert round_one["dataset"] == "toy-r1" and round_one["added"] > 0
    assert server.calls == calls_before, "the resumed job asked the teacher for round 1's examples again"
    assert rows(home, "SELECT COUNT(*) FROM datasets WHERE name LIKE 'toy-r1%'") == [(1,)]
    assert len(inputs(home, "toy-r1", train=True)) == len(inputs(home, "toy", train=True)) + round_one["added"]
    kinds = [c["kind"] for c in done["children"]]
    assert kinds.count("train") == 1 and kinds.count("evaluate") == 1, done["children"]
    assert round_one["trained_from"] == "toy"
    [train] = [c for c in done["children"] if c["kind"] == "train"]
    toy = await call(client, "get_model", model="toy")
    assert (await call(client, "get_job", job_id=train["id"]))["result"]["init_adapter"] == toy["paths"]["adapter"]
