"""Free-text metrics (chrf, judge) and the seed-only baseline: edge cases, then through MCP.

The MCP tests share one module home (built once): a free-text task (rewrite a dated note into a
fixed sentence) whose dataset holds seed rows and imported rows, and a tiny student trained on it.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from nanodistill.errors import NanodistillError
from nanodistill.evaluate.judge import (
    MAX_TEXT_CHARS,
    OVER_BUDGET,
    JudgeItem,
    judge_answers,
    judge_messages,
    judge_request,
    parse_judge_reply,
)
from nanodistill.evaluate.metrics import choose_metric, chrf_score, pick_metric, score
from nanodistill.evaluate.report import (
    ExampleResult,
    Latency,
    build_report_card,
    build_source_card,
    judge_summary,
    render_markdown,
)
from nanodistill.teacher.budget import SpendCap, spend_verdict
from nanodistill.teacher.client import TeacherClient
from nanodistill.testing.teacher_server import TeacherServer
from nanodistill.testing.tiny_student import build_tiny_student
from server.app import build_server
from tests.mcp_helpers import FAST_TRAINING, call, call_error, wait_job

pytestmark = pytest.mark.anyio

INSTRUCTION = "Rewrite the note as one formal sentence: 'The <event> organised by <name> takes place on <date>.'"
NAMES = ("Ana", "Bruno", "Chloé", "Dmitri", "Eva", "Farid", "Grace", "Hiro")
EVENTS = ("meeting", "review", "workshop", "dinner", "launch", "audit")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October")


def dated_notes(n: int, seed: int) -> list[dict[str, str]]:
    """A free-text task with one right answer per input, long enough that exact match would be useless."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        name, event = rng.choice(NAMES), rng.choice(EVENTS)
        year, month, day = rng.randint(2020, 2029), rng.randint(1, 10), rng.randint(1, 28)
        rows.append(
            {
                "input": f"{name} set the {event} for {year}-{month:02d}-{day:02d}.",
                "output": f"The {event} organised by {name} takes place on {day} {MONTHS[month - 1]} {year}.",
            }
        )
    return rows


# --- chrf -----------------------------------------------------------------------------------------------


def test_chrf_edge_cases() -> None:
    from sacrebleu.metrics import CHRF

    gold = "The meeting organised by Ana takes place on 5 March 2024."
    assert chrf_score(gold, gold) == 1.0
    assert chrf_score("", "") == 1.0 and chrf_score("  ", "\n") == 1.0
    assert chrf_score(gold, "") == 0.0 and chrf_score("", gold) == 0.0
    # sacrebleu's chrF ignores whitespace, and the score is its own, scaled to [0, 1].
    assert chrf_score("a b c", "abc") == 1.0
    partial = "The meeting by Ana is on 5 March."
    assert chrf_score(gold, partial) == pytest.approx(CHRF().sentence_score(partial, [gold]).score / 100)
    assert 0.0 < chrf_score(gold, partial) < 1.0
    # Unicode: accents, CJK and emoji are characters like any other.
    assert chrf_score("Réunion chez Chloé 🎉 会议", "Réunion chez Chloé 🎉 会议") == 1.0
    assert 0.0 < chrf_score("Réunion chez Chloé 🎉 会议", "Reunion chez Chloe 会议") < 1.0
    # A very long rambling answer is scored (low, finite), not refused.
    rambling = gold + " and so on" * 20_000
    assert 0.0 < chrf_score(gold, rambling) < 0.5
    assert score("chrf", [gold, gold], [gold, ""]) == [1.0, 0.0]


def test_auto_picks_chrf_for_free_text_without_a_teacher_and_judge_with_one() -> None:
    golds = [r["output"] for r in dated_notes(6, seed=0)]
    assert pick_metric(golds) == "chrf"
    offline = choose_metric("auto", golds)
    assert offline.name == "chrf" and "no teacher" in offline.note
    judged = choose_metric("auto", golds, teacher="openai/grader")
    assert judged.name == "judge" and "openai/grader" in judged.note
    assert choose_metric("auto", ["positive", "negative", "positive", "negative"], teacher="t").name == "label"
    assert choose_metric("chrf", golds, teacher="t").name == "chrf"
    with pytest.raises(NanodistillError, match="needs a teacher"):
        choose_metric("judge", golds)
    with pytest.raises(NanodistillError, match="metric must be one of"):
        score("judge", golds, golds)


# --- judge replies --------------------------------------------------------------------------------------


def test_judge_reply_parsing_accepts_only_a_score_in_range() -> None:
    ok = parse_judge_reply('{"score": 0.75, "reason": "right date,\\n wrong name"}')
    assert ok is not None and ok.score == 0.75 and ok.reason == "right date, wrong name"
    fenced = parse_judge_reply('```json\n{"score": 1, "reason": "same"}\n```')
    assert fenced is not None and fenced.score == 1.0
    assert parse_judge_reply('{"score": 0}') is not None
    long_reason = parse_judge_reply(json.dumps({"score": 0.5, "reason": "x" * 1000}))
    assert long_reason is not None and len(long_reason.reason) <= 200
    for bad in (
        "",
        "0.8",
        "The answer is good.",
        '{"score": 1.5, "reason": "very good"}',
        '{"score": -0.1, "reason": "bad"}',
        '{"score": 7, "reason": "out of ten"}',
        '{"score": "0.8", "reason": "a string"}',
        '{"score": true, "reason": "a boolean"}',
        '{"score": NaN, "reason": "not a number"}',
        '{"reason": "no score"}',
        '{"score": 0.5, "reason": "cut off',
    ):
        assert parse_judge_reply(bad) is None, bad


def test_judge_prompt_round_trips_and_bounds_very_long_texts() -> None:
    item = JudgeItem(input="Chloé set the dîner for 2024-03-05.", gold="The dîner 🎉 is on 5 March.", answer="会议")
    messages = judge_messages(INSTRUCTION, item)
    assert judge_request(messages) == item
    assert judge_request([{"role": "user", "content": "hello"}]) is None
    huge = JudgeItem(input="short", gold="gold", answer="y" * 100_000)
    prompt = judge_messages(INSTRUCTION, huge)[1]["content"]
    assert len(prompt) < 3 * MAX_TEXT_CHARS and "more characters not shown" in prompt


@pytest.fixture
def grader(server: TeacherServer) -> TeacherClient:
    return TeacherClient(server.model, api_base=server.url, input_cost_per_token=1e-6, output_cost_per_token=2e-6)


async def test_judge_grades_through_the_teacher_client(server: TeacherServer, grader: TeacherClient) -> None:
    gold = "The review organised by Eva takes place on 3 May 2025."
    items = [
        JudgeItem("Eva set the review for 2025-05-03.", gold, "The review by Eva is on 3 May 2025."),
        JudgeItem("x", gold, gold.upper()),  # identical after normalising: no call
        JudgeItem("x", gold, "   "),  # empty: no call
        JudgeItem("x", "Das Kätzchen schläft 猫", "Das Kätzchen schläft 猫 😺"),
    ]
    grades = await judge_answers(grader, INSTRUCTION, items)
    assert server.calls == 2 and grader.totals.calls == 2
    first, same, empty, unicode = grades
    assert first.score is not None and 0 < first.score < 1 and "reference words present" in first.reason
    assert (same.score, same.calls) == (1.0, 0) and (empty.score, empty.calls) == (0.0, 0)
    assert unicode.score is not None and unicode.score > 0.8
    assert grader.totals.cost_usd > 0


async def test_malformed_or_out_of_range_replies_get_one_retry_then_stay_unjudged(
    server: TeacherServer, grader: TeacherClient
) -> None:
    item = [JudgeItem("Ana set the dinner for 2024-01-02.", "The dinner is on 2 January 2024.", "A dinner, 2 Jan.")]
    server.faults.malformed = 1
    [retried] = await judge_answers(grader, INSTRUCTION, item)
    assert retried.score is not None and retried.calls == 2
    server.faults.judge_out_of_range = 1
    other = [JudgeItem("b", "The dinner is on 2 January 2024.", "Dinner: 2 January.")]
    [retried] = await judge_answers(grader, INSTRUCTION, other)
    assert retried.score is not None and retried.calls == 2

    server.faults.malformed = 2
    [lost] = await judge_answers(grader, INSTRUCTION, [JudgeItem("c", "The dinner is on 2 January.", "Soon.")])
    assert lost.score is None and lost.calls == 2 and lost.reason.startswith("unjudged")
    server.faults.judge_out_of_range = 2
    [lost] = await judge_answers(grader, INSTRUCTION, [JudgeItem("d", "The dinner is on 2 January.", "Later.")])
    assert lost.score is None and "out of ten" in lost.reason


def test_spend_verdict_prices_work_at_the_dearest_unit_so_far() -> None:
    assert spend_verdict(None, 99.0, {}, {"judge": 5}) is None
    assert spend_verdict(1.0, 0.0, {}, {}) is None  # the first unit goes alone: its price is unknown
    assert spend_verdict(1.0, 0.0, {}, {"judge": 1}) == "wait"
    assert spend_verdict(1.0, 0.3, {"judge": 0.2}, {"judge": 2}) is None  # 0.3 + 2*0.2 + 0.2 = 0.9
    assert spend_verdict(1.0, 0.5, {"judge": 0.2}, {"judge": 2}) == "wait"
    assert spend_verdict(1.0, 0.9, {"judge": 0.2}, {}) == "stop"
    assert spend_verdict(1.0, 0.1, {"a": 0.1}, {"b": 1}) == "wait"  # a kind not yet priced goes alone


async def test_a_judging_budget_leaves_the_rest_unjudged_and_is_never_passed(
    server: TeacherServer, grader: TeacherClient
) -> None:
    gold = "The review organised by Eva takes place on 3 May 2025."
    items = [JudgeItem(f"note {i}", gold, f"The review by Eva is on {i + 1} May 2025.") for i in range(12)]
    [probe] = await judge_answers(grader, INSTRUCTION, items[:1])
    one_call = grader.totals.cost_usd
    assert probe.score is not None and one_call > 0
    fresh = TeacherClient(server.model, api_base=server.url, input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    limit = 3.5 * one_call
    cap = SpendCap(limit, lambda: fresh.totals.cost_usd, lambda: fresh.totals.priced)
    grades = await judge_answers(fresh, INSTRUCTION, items[1:], cap)
    judged = [g for g in grades if g.score is not None]
    skipped = [g for g in grades if g.reason == OVER_BUDGET]
    assert len(judged) + len(skipped) == 11 and judged and skipped
    assert fresh.totals.cost_usd <= limit and cap.refused == len(skipped)


# --- the card with unjudged answers and the seed-only baseline ------------------------------------------


def _row(i: int, student: float | None, base: float | None, seeds: float | None = None) -> ExampleResult:
    return ExampleResult(
        index=i,
        input=f"in {i}",
        gold="g",
        student=f"s{i}",
        student_score=student,
        base=f"b{i}",
        base_score=base,
        seeds_only=f"o{i}" if seeds is not None else None,
        seeds_only_score=seeds,
        reasons={"student": f"reason {i}"},
    )


LATENCY = Latency(ms_per_answer=1.0, tokens_per_s=1.0, answers=1, batch_size=8)


def test_unjudged_answers_are_counted_and_left_out_of_every_mean() -> None:
    rows = [_row(0, 1.0, 0.0), _row(1, None, 0.0), _row(2, 1.0, None), _row(3, 0.5, 0.5)]
    source = build_source_card("holdout seeds", "judge", rows, leaked=0)
    assert source.unjudged == 2
    assert source.student is not None and source.student.mean == pytest.approx(2.5 / 3)
    assert source.base is not None and source.base.mean == pytest.approx(0.5 / 3)
    assert source.difference is not None and source.difference.mean == pytest.approx((1.0 + 0.0) / 2)
    assert all(e.student_score is not None for e in [*source.best, *source.worst])
    summary = judge_summary("openai/grader", [source])
    assert (summary.answers, summary.unjudged) == (8, 2) and summary.reasons[0].reason.startswith("reason")

    nothing = build_source_card("holdout seeds", "judge", [_row(0, None, None)], leaked=0)
    card = build_report_card([nothing], latency=LATENCY, training={}, loss_plot_uri=None)
    assert not card.ready and "could be graded" in card.verdict


def test_the_card_says_whether_amplification_helped() -> None:
    helped = [_row(i, 1.0, 0.0, 0.4) for i in range(10)]
    card = build_report_card(
        [build_source_card("holdout seeds", "chrf", helped, leaked=0)],
        latency=LATENCY,
        training={},
        loss_plot_uri=None,
        metric_note="auto picked chrf: free text.",
    )
    assert card.ready and card.amplification is not None and card.amplification.startswith("Amplification helped")
    assert "base 0.000" in card.amplification and "seeds-only 0.400" in card.amplification
    text = render_markdown(card)
    assert "student - seeds-only" in text and "Metric: **chrf**. auto picked chrf" in text

    flat = [_row(i, 0.5 + 0.1 * (i % 2), 0.0, 0.5 + 0.1 * ((i + 1) % 2)) for i in range(10)]
    card = build_report_card(
        [build_source_card("holdout seeds", "chrf", flat, leaked=0)], latency=LATENCY, training={}, loss_plot_uri=None
    )
    assert card.amplification is not None and "did not help" in card.amplification
    assert "did not help" in card.verdict


# --- through MCP ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    root: Path
    home: Path
    model: dict[str, Any]
    seeds_model: dict[str, Any]


async def _build_world(root: Path, tiny: Path) -> World:
    imported = root / "more.jsonl"
    imported.write_text("".join(json.dumps(r) + "\n" for r in dated_notes(36, seed=2)), encoding="utf-8")
    async with Client(build_server()) as client:
        await call(
            client,
            "create_dataset",
            name="notes",
            examples=dated_notes(20, seed=1),
            instruction=INSTRUCTION,
            holdout_fraction=0.25,
        )
        await call(
            client,
            "create_dataset",
            name="notes-seeds",
            examples=dated_notes(20, seed=1),
            instruction=INSTRUCTION,
            holdout_fraction=0.25,
        )
        await call(client, "add_examples", dataset="notes", path=str(imported))
        training = {**FAST_TRAINING, "iters": 12, "steps_per_eval": 12, "save_every": 12}
        jobs = [
            await call(client, "train_student", dataset="notes", base_model=str(tiny), name="notes", **training),
            # 15 rows need a larger validation share to leave a batch of 4 on each side.
            await call(
                client,
                "train_student",
                dataset="notes-seeds",
                base_model=str(tiny),
                name="notes-seeds",
                val_fraction=0.3,
                **training,
            ),
        ]
        for job in jobs:
            done, _ = await wait_job(client, job["id"])
            assert done["status"] == "succeeded", done
        model = await call(client, "get_model", model="notes")
        seeds_model = await call(client, "get_model", model="notes-seeds")
    return World(root, root / "home", model, seeds_model)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, blas_cache: Path) -> Iterator[World]:
    root = tmp_path_factory.mktemp("free-text")
    (root / "home").mkdir()
    tiny = build_tiny_student(root / "tiny")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NANODISTILL_HOME", str(root / "home"))
        patch.setenv("NANODISTILL_BLAS_CACHE", str(blas_cache))
        patch.setenv("NANODISTILL_IMPORT_ROOTS", str(root))
        yield anyio.run(_build_world, root, tiny)


@pytest.fixture
async def trained(world: World, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Client]:
    monkeypatch.setenv("NANODISTILL_HOME", str(world.home))
    monkeypatch.setenv("NANODISTILL_IMPORT_ROOTS", str(world.root))
    async with Client(build_server()) as connected:
        yield connected


def stored_report(world: World, model_id: str) -> dict[str, Any]:
    with sqlite3.connect(world.home / "nanodistill.db") as db:
        row = db.execute("SELECT report FROM models WHERE id = ?", (model_id,)).fetchone()
    assert row is not None and row[0]
    report: dict[str, Any] = json.loads(row[0])
    return report


async def card_text(client: Client, model_id: str) -> str:
    result = await client.read_resource(f"nanodistill://models/{model_id}/card")
    text: str = result.contents[0].text  # type: ignore[union-attr]
    return text


async def evaluated(client: Client, **arguments: Any) -> dict[str, Any]:
    job = await call(client, "evaluate_student", **arguments)
    done, _ = await wait_job(client, job["id"])
    assert done["status"] == "succeeded", done
    return done


@pytest.mark.slow
async def test_chrf_card_names_the_metric_and_why(trained: Client, world: World) -> None:
    done = await evaluated(trained, model="notes", max_tokens=24)
    assert done["result"]["metric"] == "chrf" and done["result"]["unjudged"] is None
    report = stored_report(world, world.model["id"])
    assert report["metric"] == "chrf" and "no teacher" in report["metric_note"]
    main = report["sources"][0]
    assert main["metric"] == "chrf" and main["size"] == 5 and main["unjudged"] == 0
    assert main["student"]["mean"] == pytest.approx(sum(e["student_score"] for e in main["examples"]) / 5)
    assert all(e["student_score"] == chrf_score(e["gold"], e["student"]) for e in main["examples"])
    text = await card_text(trained, world.model["id"])
    assert "Metric: **chrf**. auto picked chrf" in text and "| holdout seeds | 5 | chrf |" in text
    assert "## Judge" not in text


@pytest.mark.slow
async def test_judge_card_shows_cost_and_reasons(trained: Client, world: World, server: TeacherServer) -> None:
    teacher = {"teacher": server.model, "api_base": server.url}
    message = await call_error(trained, "evaluate_student", model="notes", metric="judge")
    assert "'teacher'" in message and "judge" in message
    message = await call_error(trained, "evaluate_student", model="notes", api_base=server.url)
    assert "'api_base' only applies with a teacher" in message
    done = await evaluated(
        trained,
        model="notes",
        metric="judge",
        max_tokens=24,
        compare_base=False,
        input_cost_per_token=1e-6,
        output_cost_per_token=2e-6,
        **teacher,
    )
    result = done["result"]
    assert result["metric"] == "judge" and result["unjudged"] == 0
    assert result["judge_cost_usd"] > 0 and done["cost_usd"] == pytest.approx(result["judge_cost_usd"], abs=1e-6)
    report = stored_report(world, world.model["id"])
    judge = report["judge"]
    # Each answer costs one call, unless it was empty or the gold itself (decided without the teacher).
    assert judge["teacher"] == server.model and 1 <= judge["calls"] <= judge["answers"] == 5
    assert server.calls == judge["calls"] and judge["unjudged"] == 0
    assert judge["reasons"] and all(r["reason"] for r in judge["reasons"])
    main = report["sources"][0]
    assert main["metric"] == "judge" and main["unjudged"] == 0 and main["base"] is None
    scores = [e["student_score"] for e in main["examples"]]
    assert main["student"]["mean"] == pytest.approx(sum(scores) / len(scores))
    text = await card_text(trained, world.model["id"])
    assert "Metric: **judge**. metric judge by" in text and "## Judge" in text
    assert "Cost of judging: $" in text and "0 left unjudged" in text
    assert judge["reasons"][0]["reason"] in text


@pytest.mark.slow
async def test_seeds_only_baseline_on_the_card(trained: Client, world: World) -> None:
    message = await call_error(trained, "evaluate_student", model="notes-seeds", baselines=["seeds_only"])
    assert "'baselines'" in message and "seed examples only" in message
    done = await evaluated(trained, model="notes", baselines=["base", "seeds_only"], metric="chrf", max_tokens=24)
    result = done["result"]
    assert result["seeds_only_score"] is not None and result["base_score"] is not None
    assert result["amplification"].startswith("Amplification")
    report = stored_report(world, world.model["id"])
    seeds = report["seeds_only"]
    # 15 seeds stay in training (5 held out); val_fraction 0.1 of them is less than one batch, so it grows.
    assert seeds["n_seeds"] == 15 and seeds["iters"] == 12 and seeds["changed"]["val_fraction"] > 0.1
    assert Path(seeds["adapter_path"]).is_dir()
    main = report["sources"][0]
    assert main["seeds_only"] is not None and main["seeds_only_difference"] is not None
    assert all(e["seeds_only"] is not None for e in main["examples"])
    assert report["amplification"] in report["verdict"]
    text = await card_text(trained, world.model["id"])
    assert "## Seed-only baseline" in text and "changed to fit so few rows: val_fraction=" in text
    header = next(line for line in text.splitlines() if line.startswith("| source |"))
    assert "| base | seeds-only | student | student - base | student - seeds-only |" in header


@pytest.mark.slow
async def test_judging_stops_at_max_cost_usd_and_the_card_is_not_ready(
    trained: Client, world: World, server: TeacherServer
) -> None:
    message = await call_error(trained, "evaluate_student", model="notes", max_cost_usd=0.01)
    assert "'max_cost_usd' only applies with a teacher" in message
    teacher = {"teacher": server.model, "api_base": server.url}
    message = await call_error(trained, "evaluate_student", model="notes", max_cost_usd=-1, **teacher)
    assert "'max_cost_usd' must be a positive USD amount" in message
    prices = {"input_cost_per_token": 1e-3, "output_cost_per_token": 1e-3}
    done = await evaluated(
        trained,
        model="notes",
        metric="judge",
        max_tokens=24,
        compare_base=False,
        max_cost_usd=1e-6,
        **prices,
        **teacher,
    )
    report = stored_report(world, world.model["id"])
    judge = report["judge"]
    assert judge["max_cost_usd"] == 1e-6 and judge["over_budget"] >= 1
    assert judge["calls"] <= 1  # the first call's price is unknown until it is paid; no call follows it
    assert report["ready"] is False and report["verdict"].startswith("Judging stopped at max_cost_usd=1e-06")
    assert done["result"]["ready"] is False
    text = await card_text(trained, world.model["id"])
    assert "Budget: max_cost_usd=1e-06" in text
