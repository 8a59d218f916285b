"""Answers outside the seeds' closed label set: rejected and counted by an amplify job, kept when the
set is opened, and which seed outputs make a closed set at all."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from nanodistill.amplify.parse import closed_labels
from nanodistill.amplify.pipeline import YIELD_MIN_ANSWERS, amplify
from nanodistill.amplify.records import Accepted, AmplifyConfig, AmplifyHooks, AmplifyState, Seed
from nanodistill.teacher.client import TeacherClient
from nanodistill.testing import toy_sentiment
from nanodistill.testing.teacher_server import TeacherServer
from tests.mcp_helpers import call, wait_job

pytestmark = pytest.mark.anyio

SEEDS = [{"input": text, "output": label} for text, label in toy_sentiment.SEEDS]
OFF_LABEL = 3


def synthetic_outputs(home: Path, dataset: str) -> list[str]:
    con = sqlite3.connect(home / "nanodistill.db")
    try:
        rows = con.execute(
            "SELECT e.output FROM examples e JOIN datasets d ON d.id = e.dataset_id "
            "WHERE d.name = ? AND e.source = 'synthetic'",
            (dataset,),
        ).fetchall()
        return [row[0] for row in rows]
    finally:
        con.close()


async def test_a_teacher_whose_answers_are_never_usable_ends_the_job_with_a_verdict(
    client: Client, home: Path, server: TeacherServer
) -> None:
    """Readable replies that are all off-label: the job stops after YIELD_MIN_ANSWERS inputs, not after hours."""
    await call(
        client,
        "create_dataset",
        name="reviews",
        examples=SEEDS,
        instruction=toy_sentiment.INSTRUCTION,
        holdout_fraction=0,
    )
    server.faults.update({"off_label": 100_000})
    started = await call(
        client, "amplify_dataset", dataset="reviews", teacher=server.model, api_base=server.url, target_size=400
    )
    view, _ = await wait_job(client, started["job"]["id"])
    assert view["status"] == "failed", view
    found = re.search(r"gave a usable answer for 0 of (\d+) inputs \(off_label (\d+)\)", view["error"])
    assert found is not None and int(found[1]) >= YIELD_MIN_ANSWERS and found[1] == found[2], view["error"]
    assert "pick a stronger teacher" in view["error"]
    assert synthetic_outputs(home, "reviews-amplified") == []


@pytest.mark.slow
async def test_off_label_answers_are_rejected_and_counted(client: Client, home: Path, server: TeacherServer) -> None:
    await call(
        client,
        "create_dataset",
        name="reviews",
        examples=SEEDS,
        instruction=toy_sentiment.INSTRUCTION,
        holdout_fraction=0,
    )
    server.faults.update({"off_label": OFF_LABEL})  # the next 3 answers are {"answer": "banana"}
    started = await call(
        client, "amplify_dataset", dataset="reviews", teacher=server.model, api_base=server.url, target_size=24
    )
    view, events = await wait_job(client, started["job"]["id"])
    assert view["status"] == "succeeded", view
    assert server.faults.off_label == 0
    assert view["result"]["rejected"] == {"off_label": OFF_LABEL}
    assert view["result"]["total_examples"] == 24
    outputs = synthetic_outputs(home, "reviews-amplified")
    assert len(outputs) == 14 and set(outputs) <= {"positive", "negative"}, outputs
    messages = [e["message"] for e in events]
    assert any("closed label set (positive, negative)" in m for m in messages), messages
    assert any("'banana', outside the seeds' labels" in m for m in messages), messages


async def _run(server: TeacherServer, open_labels: bool) -> tuple[list[Accepted], dict[str, int]]:
    accepted: list[Accepted] = []

    async def on_accept(example: Accepted) -> None:
        accepted.append(example)

    seeds = [Seed(id=i, input=s["input"], output=s["output"]) for i, s in enumerate(SEEDS)]
    teacher = TeacherClient(server.model, api_base=server.url, concurrency=2)
    config = AmplifyConfig(target_size=16, concurrency=2, open_labels=open_labels)
    result = await amplify(
        seeds,
        instruction=toy_sentiment.INSTRUCTION,
        teacher=teacher,
        config=config,
        state=AmplifyState(),
        hooks=AmplifyHooks(on_accept=on_accept),
    )
    return accepted, result.rejected


async def test_open_labels_keeps_answers_outside_the_seeds(server: TeacherServer) -> None:
    server.faults.update({"off_label": 2})
    accepted, rejected = await _run(server, open_labels=True)
    assert rejected == {}
    assert sum(e.output == "banana" for e in accepted) == 2
    server.faults.update({"off_label": 2})
    accepted, rejected = await _run(server, open_labels=False)
    assert rejected == {"off_label": 2}
    assert {e.output for e in accepted} <= {"positive", "negative"}


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        (["positive", "negative"] * 5, {"positive": "positive", "negative": "negative"}),
        (["Spam", "ham", "spam.", "Ham"], {"spam": "Spam", "ham": "ham"}),
        ([f"label {i % 20}" for i in range(40)], {f"label {i}": f"label {i}" for i in range(20)}),
        ([f"label {i % 21}" for i in range(42)], None),  # too many labels
        (["yes"] * 6, None),  # one label is no set to choose from
        (["a", "b", "c", "a", "b"], None),  # the seeds barely repeat their outputs
        (["positive", "negative"] * 4 + ["a summary far longer than any label would ever be"], None),
        (["line one\nline two", "other"] * 3, None),
    ],
)
def test_which_seed_outputs_form_a_closed_label_set(outputs: list[str], expected: dict[str, Any] | None) -> None:
    assert closed_labels(outputs) == expected
