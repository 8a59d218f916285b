"""The fast BLAS changes speed, never results: a train job and a query agree with and without it."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from nanodistill.platform.blas import blas_status
from nanodistill.settings import load_settings
from nanodistill.testing import toy_sentiment
from nanodistill.testing.tiny_student import build_tiny_student
from tests.mcp_helpers import call

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def toy_rows(n: int) -> list[dict[str, str]]:
    rng = random.Random(3)
    rows = []
    for _ in range(n):
        review = toy_sentiment.review(rng)
        rows.append({"input": review, "output": toy_sentiment.label(review)})
    return rows


async def train_once(client: Client, base: Path, name: str) -> tuple[list[dict[str, Any]], list[str]]:
    job = await call(
        client,
        "train_student",
        dataset="toy",
        base_model=str(base),
        name=name,
        iters=10,
        batch_size=4,
        learning_rate=1e-4,
        num_layers=-1,
        reasoning="none",
        steps_per_eval=5,
        save_every=5,
    )
    messages: list[str] = []
    cursor = 0
    while True:
        job = await call(client, "get_job", job_id=job["id"], wait_s=10, events_after=cursor)
        cursor = job["events_cursor"]
        messages += [e["message"] for e in job["events"]]
        if job["next_poll_s"] is None:
            break
    assert job["status"] == "succeeded", job["error"]
    model = await call(client, "get_model", model=name)
    return model["metrics"]["loss_history"], messages


async def test_training_losses_match_with_and_without_the_fast_path(
    client: Client, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not blas_status(load_settings()).applicable:
        pytest.skip("the fast BLAS applies only to mlx-cpu on Linux")
    base = build_tiny_student(tmp_path / "tiny")
    await call(
        client,
        "create_dataset",
        name="toy",
        examples=toy_rows(60),
        instruction=toy_sentiment.INSTRUCTION,
        holdout_fraction=0,
    )
    fast, fast_events = await train_once(client, base, "fast")
    monkeypatch.setenv("NANODISTILL_FAST_BLAS", "0")
    stock, stock_events = await train_once(client, base, "stock")
    assert any("BLAS: fast path active" in m for m in fast_events)
    assert any("BLAS: stock" in m and "NANODISTILL_FAST_BLAS=0" in m for m in stock_events)
    assert [(r["kind"], r["iteration"]) for r in fast] == [(r["kind"], r["iteration"]) for r in stock]
    for a, b in zip(fast, stock, strict=True):
        loss_a = a.get("val_loss", a.get("train_loss"))
        loss_b = b.get("val_loss", b.get("train_loss"))
        assert loss_a == pytest.approx(loss_b, rel=1e-4)


async def query_over_stdio(home: Path, base: Path, fast_blas: str) -> list[str]:
    """The stdio server a desktop host starts: only the model's folder is an allowed folder."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "server.main"],
        env={
            "NANODISTILL_HOME": str(home),
            "NANODISTILL_FAST_BLAS": fast_blas,
            "NANODISTILL_BLAS_CACHE": os.environ["NANODISTILL_BLAS_CACHE"],
            "NANODISTILL_IMPORT_ROOTS": str(base.parent),
        },
    )
    async with Client(params) as client:
        result = await call(
            client, "query_student", model=str(base), prompts=["the film was great", "awful soup"], max_tokens=8
        )
    return [a["answer"] for a in result["answers"]]


async def test_queries_match_with_and_without_the_fast_path(home: Path, tmp_path: Path) -> None:
    base = build_tiny_student(tmp_path / "tiny")
    assert await query_over_stdio(home, base, "1") == await query_over_stdio(home, base, "0")
