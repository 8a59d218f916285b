"""Run the evaluation: student and baselines answer the same held-out inputs, then the card is built.

Every model sees the prompt formatting used in training (instruction as system message); the
base answers without reasoning, since it never learned the think markers, and the seed-only
student answers the way it was trained, like the student. Decoding is greedy so a card can be
reproduced. Work goes in batches, with progress and a stop check between them; a stopped run
still returns a card (marked incomplete, never ready) for what was answered. Under `judge`
each batch's answers are graded through `judge`, a callable the job bridges to its teacher.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nanodistill.data.chat import ReasoningMode
from nanodistill.errors import NanodistillError
from nanodistill.evaluate.judge import JudgeItem, Judgement
from nanodistill.evaluate.leakage import drop_leaked
from nanodistill.evaluate.metrics import choose_metric, score
from nanodistill.evaluate.report import (
    ExampleResult,
    Latency,
    ReportCard,
    build_report_card,
    build_source_card,
    judge_summary,
)
from nanodistill.student.generate import generate_answers
from nanodistill.student.load import LoadedStudent


@dataclass(frozen=True)
class TestExample:
    __test__: ClassVar[bool] = False

    input: str
    output: str
    teacher_output: str | None = None


Judge = Callable[[list[JudgeItem]], list[Judgement]]
"""Grades answers (one Judgement per item, in order); blocking, called from the evaluation thread."""


@dataclass(frozen=True)
class TestSource:
    """A named set of held-out examples, e.g. 'holdout seeds', 'test set', 'teacher-labelled slice'."""

    __test__: ClassVar[bool] = False

    name: str
    examples: Sequence[TestExample]


def _kept(sources: list[TestSource], train_inputs: Sequence[str], threshold: float) -> list[list[int]]:
    if not train_inputs:
        return [list(range(len(s.examples))) for s in sources]
    return [drop_leaked(train_inputs, [e.input for e in s.examples], threshold)[0] for s in sources]


def _score_chunk(
    metric: str,
    chunk: list[tuple[int, TestExample]],
    answers: dict[str, list[str]],
    judge: Judge | None,
) -> list[ExampleResult]:
    """Score every model's answers (`answers` by role: student, base, seeds_only) and the teacher's."""
    texts = dict(answers)
    teacher_at = [j for j, (_, e) in enumerate(chunk) if e.teacher_output is not None]
    texts["teacher"] = [chunk[j][1].teacher_output or "" for j in teacher_at]
    every = list(range(len(chunk)))
    at = {role: teacher_at if role == "teacher" else every for role in texts}  # the chunk row of each answer
    golds = {role: [chunk[j][1].output for j in rows] for role, rows in at.items()}
    scores: dict[str, list[float | None]] = {}
    reasons: dict[str, list[str]] = {}
    if metric == "judge":
        assert judge is not None, "choose_metric refuses judge without a teacher"
        order = [(role, k) for role, said in texts.items() for k in range(len(said))]
        graded = judge([JudgeItem(chunk[at[r][k]][1].input, golds[r][k], texts[r][k]) for r, k in order])
        for role in texts:
            scores[role], reasons[role] = [], []
        for (role, _), grade in zip(order, graded, strict=True):
            scores[role].append(grade.score)
            reasons[role].append(grade.reason)
    else:
        for role, said in texts.items():
            scores[role] = [*score(metric, golds[role], said)]
    teacher_row = {j: k for k, j in enumerate(teacher_at)}
    results = []
    for j, (index, example) in enumerate(chunk):
        row: dict[str, object] = {"index": index, "input": example.input, "gold": example.output}
        for role in answers:
            row[role] = answers[role][j]
            row[f"{role}_score"] = scores[role][j]
        k = teacher_row.get(j)
        if k is not None:
            row["teacher"] = example.teacher_output
            row["teacher_score"] = scores["teacher"][k]
        row["reasons"] = {role: reasons[role][j] for role in answers if role in reasons}
        results.append(ExampleResult.model_validate(row))
    return results


def evaluate_student(
    student: LoadedStudent,
    base: LoadedStudent | None,
    sources: list[TestSource],
    *,
    instruction: str,
    reasoning: ReasoningMode,
    metric: str = "auto",
    max_tokens: int,
    on_progress: Callable[[int, int], None],
    should_stop: Callable[[], bool],
    train_inputs: Sequence[str] = (),
    leakage_threshold: float = 0.9,
    training: dict[str, Any] | None = None,
    loss_plot_uri: str | None = None,
    batch_size: int = 8,
    seeds_only: LoadedStudent | None = None,
    judge: Judge | None = None,
    teacher: str | None = None,
) -> ReportCard:
    """Score student (and base, and the seed-only student) on every source; the first source is the
    main one for the verdict.

    Test inputs nearly duplicating a `train_inputs` entry are dropped and counted as leakage.
    `on_progress(done, total)` counts examples answered by every model being compared. `judge` and
    `teacher` (its name, for the card) make free text gradable by the teacher (metric judge, or auto).
    """
    if not sources:
        raise NanodistillError("sources is empty: give at least one test source with examples.")
    if batch_size < 1:
        raise NanodistillError(f"batch_size must be at least 1; got {batch_size}.")
    if (judge is None) != (teacher is None):
        raise NanodistillError("judge and teacher go together: give both or neither.")
    kept = _kept(sources, train_inputs, leakage_threshold)
    total = sum(len(k) for k in kept)
    if total == 0:
        raise NanodistillError(
            "no test examples to evaluate: every source is empty or nearly duplicates training inputs."
        )
    golds = [s.examples[i].output for s, k in zip(sources, kept, strict=True) for i in k]
    choice = choose_metric(metric, golds, teacher)
    baselines = {"base": (base, "none"), "seeds_only": (seeds_only, reasoning)}
    results: list[list[ExampleResult]] = [[] for _ in sources]
    answered = 0
    tokens = 0
    student_wall = 0.0
    complete = True
    on_progress(0, total)
    for source, indices, out in zip(sources, kept, results, strict=True):
        for start in range(0, len(indices), batch_size):
            if should_stop():
                complete = False
                break
            chunk = [(i, source.examples[i]) for i in indices[start : start + batch_size]]
            inputs = [e.input for _, e in chunk]
            began = time.perf_counter()
            answers = generate_answers(
                student,
                inputs,
                instruction=instruction,
                reasoning=reasoning,
                max_tokens=max_tokens,
                temperature=0.0,
            )
            student_wall += time.perf_counter() - began
            tokens += sum(a.tokens_generated for a in answers)
            said = {"student": [a.text for a in answers]}
            for role, (model, mode) in baselines.items():
                if model is not None:
                    replies = generate_answers(
                        model, inputs, instruction=instruction, reasoning=mode, max_tokens=max_tokens, temperature=0.0
                    )
                    said[role] = [a.text for a in replies]
            out.extend(_score_chunk(choice.name, chunk, said, judge))
            answered += len(chunk)
            on_progress(answered, total)
        if not complete:
            break
    cards = [
        build_source_card(source.name, choice.name, out, leaked=len(source.examples) - len(indices))
        for source, indices, out in zip(sources, kept, results, strict=True)
    ]
    latency = Latency(
        ms_per_answer=1000 * student_wall / answered if answered else 0.0,
        tokens_per_s=tokens / student_wall if student_wall > 0 else 0.0,
        answers=answered,
        batch_size=batch_size,
    )
    card = build_report_card(
        cards,
        latency=latency,
        training=training or {},
        loss_plot_uri=loss_plot_uri,
        complete=complete,
        metric_note=choice.note,
    )
    if choice.name == "judge" and teacher is not None:
        card.judge = judge_summary(teacher, cards)
    return card
