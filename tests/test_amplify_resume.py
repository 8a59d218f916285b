"""A resumed amplify job reports its whole life: seeds traced and agreement from every attempt, and
rounds the cache replays from an earlier attempt are not the teacher repeating itself.

The first attempt is frozen at a known point, not at a moment: the stand-in teacher hangs every call
once it has been asked for a set number of answers, so the job has exactly that many examples stored
however fast the teacher answers; it is then cancelled and resumed with a working teacher.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from nanodistill.testing import toy_sentiment
from nanodistill.testing.teacher_server import Faults, TeacherServer
from tests.mcp_helpers import call

pytestmark = pytest.mark.anyio

SEEDS = [{"input": text, "output": label} for text, label in toy_sentiment.SEEDS]


class HangAfterAnswers(Faults):
    """Faults that hang every call once the teacher has been asked for more than `answers` answers."""

    def __init__(self, server: TeacherServer, answers: int, **faults: Any) -> None:
        super().__init__(hang_s=300, **faults)
        self.server = server
        self.answers = answers

    def take(self, name: str) -> bool:
        if name == "hang" and self.server.calls_by_kind["answer"] > self.answers:
            return True
        return super().take(name)


def stored_traces(home: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(home / "nanodistill.db")
    try:
        found = con.execute(
            "SELECT e.provenance FROM examples e JOIN datasets d ON d.id = e.dataset_id "
            "WHERE d.name = 'reviews-amplified' AND e.source = 'seed' AND e.split != 'holdout'"
        ).fetchall()
        return [json.loads(row[0]) for row in found]
    finally:
        con.close()


async def follow(client: Client, job_id: str, until: str, timeout: float = 120.0) -> dict[str, Any]:
    """get_job long-polls until `until` holds of the view (`ended`, or `done=N`: N examples stored)."""
    deadline = time.monotonic() + timeout
    while True:
        view = await call(client, "get_job", job_id=job_id, wait_s=2)
        ended = view["next_poll_s"] is None
        if until == "ended" and ended:
            return view
        if until.startswith("done="):
            if view["progress"]["done"] >= int(until[5:]):
                return view
            assert not ended, f"job ended {view['status']} before {until}: {view}"
        assert time.monotonic() < deadline, f"job {job_id} still {view['status']} after {timeout:g} s: {view}"


@pytest.mark.slow
async def test_resumed_job_reports_its_whole_life_and_is_not_told_its_teacher_repeats(
    client: Client, home: Path, server: TeacherServer
) -> None:
    await call(
        client,
        "create_dataset",
        name="reviews",
        examples=SEEDS,
        instruction=toy_sentiment.INSTRUCTION,
        holdout_fraction=0,
    )
    # The first three traces disagree with their gold output; the job stops after 45 of its 50 answers.
    server.faults = HangAfterAnswers(server, answers=45, wrong_answers=3)
    started = await call(
        client,
        "amplify_dataset",
        dataset="reviews",
        teacher=server.model,
        api_base=server.url,
        target_size=60,
        concurrency=1,
    )
    job_id = started["job"]["id"]
    await follow(client, job_id, "done=55")
    await call(client, "cancel_job", job_id=job_id)
    view = await follow(client, job_id, "ended")
    assert view["status"] == "cancelled", view
    traces = stored_traces(home)
    assert len(traces) == len(SEEDS) and sum(not t["agrees"] for t in traces) == 3

    server.faults = Faults()
    await call(client, "resume_job", job_id=job_id)
    view = await follow(client, job_id, "ended")
    assert view["status"] == "succeeded", view
    result = view["result"]
    assert result["total_examples"] == 60 and result["stopped_reason"] == "target", result
    assert "repeating" not in (view["note"] or ""), view["note"]
    assert result["seeds_traced"] == len(SEEDS)
    assert result["agreement_rate"] == pytest.approx(7 / 10)
    assert view["metrics"]["agreement_rate"] == pytest.approx(7 / 10)
