"""Metrics, intervals, leakage, the report card, and a full evaluation on tiny students."""

from __future__ import annotations

from typing import Any, cast

import pytest

from nanodistill.errors import NanodistillError
from nanodistill.evaluate.judge import JudgeItem, Judgement
from nanodistill.evaluate.leakage import drop_leaked
from nanodistill.evaluate.metrics import (
    bootstrap_ci,
    choose_metric,
    label_table,
    normalize_text,
    paired_bootstrap_diff,
    pick_metric,
    score,
)
from nanodistill.evaluate.report import (
    ExampleResult,
    Latency,
    build_report_card,
    build_source_card,
    render_markdown,
)
from nanodistill.evaluate.run import TestExample, TestSource, evaluate_student
from nanodistill.student.generate import generate_answers
from nanodistill.student.load import LoadedStudent, load_student
from nanodistill.testing.tiny_student import build_tiny_student

GOLDS = ["pos", "pos", "pos", "neg", "neg", "neu"]
PREDS = ["Pos", "neg", "pos.", "neg", "pos", "maybe"]


def test_label_table_on_a_hand_computed_toy() -> None:
    table = label_table(GOLDS, PREDS)
    assert table.accuracy == pytest.approx(0.5)
    rows = {r.label: r for r in table.labels}
    assert (rows["pos"].precision, rows["pos"].recall, rows["pos"].support) == pytest.approx((2 / 3, 2 / 3, 3))
    assert rows["pos"].f1 == pytest.approx(2 / 3)
    assert (rows["neg"].precision, rows["neg"].recall, rows["neg"].f1) == pytest.approx((0.5, 0.5, 0.5))
    assert (rows["neu"].precision, rows["neu"].recall, rows["neu"].f1) == (0.0, 0.0, 0.0)
    assert table.confusion == {
        "pos": {"pos": 2, "neg": 1, "neu": 0, "(other)": 0},
        "neg": {"pos": 1, "neg": 1, "neu": 0, "(other)": 0},
        "neu": {"pos": 0, "neg": 0, "neu": 0, "(other)": 1},
    }
    assert score("label", GOLDS, PREDS) == [1.0, 0.0, 1.0, 1.0, 0.0, 0.0]


def test_exact_numeric_and_json_scores() -> None:
    assert score("exact", ["Paris", "a  b"], [" paris. ", "a b c"]) == [1.0, 0.0]
    assert score(
        "numeric", ["1,000", "3.14159", "10", "$5", "40%"], ["The answer is 1000.", "3.1416", "11", "5", "40"]
    ) == [
        1.0,
        1.0,
        0.0,
        1.0,
        1.0,
    ]
    gold = '{"a": 1, "b": "x", "c": [1, 2]}'
    assert score("json", [gold, gold, gold], ['```json\n{"a": 1.0, "b": "X", "c": [1]}\n```', "no json", gold]) == [
        pytest.approx(2 / 3),
        0.0,
        1.0,
    ]
    with pytest.raises(NanodistillError, match="one prediction per gold"):
        score("exact", ["a"], [])
    with pytest.raises(NanodistillError, match="metric must be one of"):
        score("auto", ["a"], ["a"])


def test_auto_metric_selection() -> None:
    assert pick_metric(["12", "-3.5", "1,200"]) == "numeric"
    assert pick_metric(['{"label": "a"}', '{"label": "b", "n": 2}']) == "json"
    assert pick_metric(GOLDS) == "label"
    assert pick_metric(["Paris is the capital.", "Rome is the capital.", "Madrid is lovely"]) == "exact"
    assert pick_metric(["yes", "no", "maybe"]) == "exact"
    assert pick_metric(["Paris", "The meeting moves to Tuesday the fourth at nine in the morning."]) == "chrf"
    assert choose_metric("json", ["x"]).name == "json"
    assert choose_metric("auto", GOLDS).note.startswith("auto picked label:")
    with pytest.raises(NanodistillError, match="metric must be one of auto"):
        choose_metric("bleu", ["x"])
    with pytest.raises(NanodistillError, match="at least one"):
        pick_metric([])


def test_bootstrap_intervals_are_deterministic_and_cover_the_mean() -> None:
    scores = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    low, high = bootstrap_ci(scores, seed=3)
    assert (low, high) == bootstrap_ci(scores, seed=3)
    assert 0.0 <= low < sum(scores) / len(scores) < high <= 1.0
    assert bootstrap_ci([0.5, 0.5]) == (0.5, 0.5)
    mean, dlow, dhigh = paired_bootstrap_diff([1.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0])
    assert mean == pytest.approx(0.5)
    assert dlow <= mean <= dhigh
    assert paired_bootstrap_diff([1.0] * 5, [0.0] * 5) == (1.0, 1.0, 1.0)
    with pytest.raises(NanodistillError, match="empty"):
        bootstrap_ci([])


def test_leakage_drops_a_planted_near_duplicate() -> None:
    train = ["The quick brown fox jumps over the lazy dog", "Paris is the capital of France"]
    test = ["What is the boiling point of water?", "the quick brown fox jumps over the lazy dog!", "Name a prime."]
    assert drop_leaked(train, test) == ([0, 2], [1])
    assert drop_leaked([], test) == ([0, 1, 2], [])


def _rows(student: list[float], base: list[float]) -> list[ExampleResult]:
    return [
        ExampleResult(index=i, input=f"in {i}", gold="g", student=f"s{i}", student_score=s, base=f"b{i}", base_score=b)
        for i, (s, b) in enumerate(zip(student, base, strict=True))
    ]


def test_report_verdict_and_side_by_side_examples() -> None:
    latency = Latency(ms_per_answer=12.5, tokens_per_s=80.0, answers=12, batch_size=8)
    strong = build_source_card("holdout seeds", "exact", _rows([1.0] * 12, [0.0] * 12), leaked=2)
    card = build_report_card(
        [strong], latency=latency, training={"steps": 10}, loss_plot_uri="nanodistill://m/loss.png"
    )
    assert card.ready and card.leakage_dropped == 2
    assert len(strong.best) == 5 and len(strong.worst) == 5
    assert not {e.index for e in strong.best} & {e.index for e in strong.worst}

    mixed = build_source_card("test set", "exact", _rows([1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]), leaked=0)
    assert [e.index for e in mixed.best] == [0, 2] and [e.index for e in mixed.worst] == [1, 3]
    not_ready = build_report_card([mixed, strong], latency=latency, training={}, loss_plot_uri=None)
    assert not not_ready.ready and "does not exclude" in not_ready.verdict
    no_base = build_source_card(
        "test set", "exact", [r.model_copy(update={"base_score": None}) for r in _rows([1.0], [0.0])], 0
    )
    assert not build_report_card([no_base], latency=latency, training={}, loss_plot_uri=None).ready

    text = render_markdown(card)
    assert "**READY**" in text and "![loss](nanodistill://m/loss.png)" in text
    assert (
        "| holdout seeds | 12 | exact | 0.000 [0.000, 0.000] | 1.000 [1.000, 1.000] | +1.000 [+1.000, +1.000] | – |"
        in text
    )
    assert "12.5 ms per answer" in text and "| steps | 10 |" in text
    assert card.model_dump(mode="json")["sources"][0]["size"] == 12


def _liven(student: LoadedStudent) -> LoadedStudent:
    """Random small weights make the residual stream echo the last token forever; scaled-up layer
    weights make each answer depend on its input, so scores differ between examples."""
    from mlx.utils import tree_flatten, tree_unflatten

    flat = cast(list[tuple[str, Any]], tree_flatten(student.model.parameters()))
    params = [(name, value * 10 if "layers" in name and "norm" not in name else value) for name, value in flat]
    student.model.update(tree_unflatten(params))
    return student


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedStudent, LoadedStudent]:
    root = tmp_path_factory.mktemp("models")
    student = _liven(load_student(str(build_tiny_student(root / "student", seed=0)), None))
    base = _liven(load_student(str(build_tiny_student(root / "base", seed=1)), None))
    return student, base


def test_full_evaluation_matches_a_hand_computation(models: tuple[LoadedStudent, LoadedStudent]) -> None:
    student, base = models
    instruction = "Classify the review."
    inputs = [f"review {i}: the movie was {'good' if i % 2 else 'bad'}, number {i}" for i in range(7)]
    said, base_said = (
        [
            a.text
            for a in generate_answers(
                model, inputs[1:], instruction=instruction, reasoning="none", max_tokens=4, temperature=0.0
            )
        ]
        for model in (student, base)
    )
    golds = ["leaked", said[0], said[1], said[2], base_said[3], "zzz", "zzz"]
    examples = [TestExample(input=i, output=g) for i, g in zip(inputs, golds, strict=True)]
    teacher_slice = TestSource(
        "teacher-labelled slice",
        [
            TestExample(input="the acting was great", output="zzz", teacher_output="zzz"),
            TestExample("meh", "zzz", "no"),
        ],
    )
    progress: list[tuple[int, int]] = []
    card = evaluate_student(
        student,
        base,
        [TestSource("holdout seeds", examples), teacher_slice],
        instruction=instruction,
        reasoning="none",
        max_tokens=4,
        on_progress=lambda done, total: progress.append((done, total)),
        should_stop=lambda: False,
        train_inputs=[inputs[0]],
        training={"fine_tune_type": "lora"},
        loss_plot_uri="nanodistill://models/m1/loss.png",
    )
    assert progress[0] == (0, 8) and progress[-1] == (8, 8)
    main = card.sources[0]
    assert main.leaked == 1 and card.leakage_dropped == 1 and main.size == 6 and main.metric == "exact"
    assert [e.index for e in main.examples] == [1, 2, 3, 4, 5, 6]
    assert [e.student for e in main.examples] == said

    def hand(golds: list[str], preds: list[str]) -> list[float]:
        return [float(normalize_text(g) == normalize_text(p)) for g, p in zip(golds, preds, strict=True)]

    s_scores = hand([e.gold for e in main.examples], [e.student for e in main.examples])
    b_scores = hand([e.gold for e in main.examples], [e.base or "" for e in main.examples])
    assert [e.student_score for e in main.examples] == s_scores
    assert main.student is not None and main.base is not None and main.difference is not None
    assert main.student.mean == pytest.approx(sum(s_scores) / 6)
    assert main.base.mean == pytest.approx(sum(b_scores) / 6)
    assert main.difference.mean == pytest.approx((sum(s_scores) - sum(b_scores)) / 6)
    assert (main.student.low, main.student.high) == bootstrap_ci(s_scores)
    assert card.ready == (paired_bootstrap_diff(s_scores, b_scores)[1] > 0)
    slice_card = card.sources[1]
    assert slice_card.teacher_agreement == pytest.approx(0.5) and slice_card.teacher_examples == 2
    assert card.latency.answers == 8 and card.latency.ms_per_answer > 0

    text = render_markdown(card)
    s, b, d = main.student, main.base, main.difference
    row = (
        f"| holdout seeds | 6 | exact | {b.mean:.3f} [{b.low:.3f}, {b.high:.3f}] | "
        f"{s.mean:.3f} [{s.low:.3f}, {s.high:.3f}] | {d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}] | – |"
    )
    assert row in text
    assert "| teacher-labelled slice | 2 | exact |" in text and "| 0.500 |" in text
    assert "1 test examples dropped" in text and "![loss](nanodistill://models/m1/loss.png)" in text


def test_stopped_evaluation_returns_a_partial_card(models: tuple[LoadedStudent, LoadedStudent]) -> None:
    student, _ = models
    examples = [TestExample(input=f"question {i}", output="pos" if i % 2 else "neg") for i in range(6)]
    calls = iter([False, True])
    card = evaluate_student(
        student,
        None,
        [TestSource("test set", examples)],
        instruction="",
        reasoning="full",
        metric="label",
        max_tokens=3,
        on_progress=lambda done, total: None,
        should_stop=lambda: next(calls),
        batch_size=4,
    )
    assert not card.complete and not card.ready
    source = card.sources[0]
    assert source.size == 4 and source.base is None and source.labels is not None
    assert source.labels.accuracy == pytest.approx(sum(e.student_score or 0.0 for e in source.examples) / 4)
    assert "### Labels: test set" in render_markdown(card)
    with pytest.raises(NanodistillError, match="sources is empty"):
        evaluate_student(
            student,
            None,
            [],
            instruction="",
            reasoning="none",
            max_tokens=3,
            on_progress=lambda done, total: None,
            should_stop=lambda: False,
        )
    with pytest.raises(NanodistillError, match="no test examples"):
        evaluate_student(
            student,
            None,
            [TestSource("test set", examples[:1])],
            instruction="",
            reasoning="none",
            max_tokens=3,
            on_progress=lambda done, total: None,
            should_stop=lambda: False,
            train_inputs=[examples[0].input],
        )


def test_judge_and_seed_only_baseline_through_the_engine(models: tuple[LoadedStudent, LoadedStudent]) -> None:
    student, base = models
    asked: list[JudgeItem] = []

    def judge(items: list[JudgeItem]) -> list[Judgement]:
        asked.extend(items)
        return [Judgement(None if "lost" in i.gold else 0.5, f"graded {i.answer[:8]!r}") for i in items]

    long_gold = "The meeting organised by Ana takes place on {} March 2024, in the small room."
    held = [TestExample(f"note {i}", long_gold.format(i)) for i in range(2)] + [TestExample("note x", "lost " * 9)]
    teacher_slice = [TestExample("note t", long_gold.format(9), teacher_output="A different sentence here.")]
    card = evaluate_student(
        student,
        base,
        [TestSource("holdout seeds", held), TestSource("teacher-labelled slice", teacher_slice)],
        instruction="Rewrite the note.",
        reasoning="none",
        max_tokens=4,
        on_progress=lambda done, total: None,
        should_stop=lambda: False,
        seeds_only=base,
        judge=judge,
        teacher="fake/grader",
    )
    # Three models on four inputs, plus the teacher's own answer on the slice.
    assert len(asked) == 3 * 4 + 1
    assert (
        card.metric == "judge"
        and card.metric_note.startswith("auto picked judge")
        and "fake/grader" in card.metric_note
    )
    main = card.sources[0]
    assert main.unjudged == 3 and main.student is not None and main.student.mean == 0.5
    assert main.seeds_only is not None and main.seeds_only_difference is not None
    assert main.seeds_only_difference.mean == 0.0 and card.amplification is not None
    assert "did not help" in card.amplification and card.sources[1].teacher_agreement == 0.5
    assert card.judge is not None and (card.judge.answers, card.judge.unjudged) == (13, 3)
    assert card.judge.reasons and card.judge.reasons[0].reason.startswith("graded")
    with pytest.raises(NanodistillError, match="judge and teacher go together"):
        evaluate_student(
            student,
            None,
            [TestSource("holdout seeds", held)],
            instruction="",
            reasoning="none",
            max_tokens=2,
            on_progress=lambda done, total: None,
            should_stop=lambda: False,
            judge=judge,
        )
