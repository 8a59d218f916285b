"""Run the evaluation: student and base answer the same held-out inputs, then the card is built.

Both models see the prompt formatting used in training (instruction as system message); the
base answers without reasoning, since it never learned the think markers. Decoding is greedy so
a card can be reproduced. Work goes in batches, with progress and a stop check between them;
a stopped run still returns a card (marked incomplete, never ready) for what was answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nanodistill.data.chat import ReasoningMode
from nanodistill.errors import NanodistillError
from nanodistill.evaluate.leakage import drop_leaked
from nanodistill.evaluate.metrics import resolve_metric, score
from nanodistill.evaluate.report import (
    ExampleResult,
    Latency,
    ReportCard,
    build_report_card,
    build_source_card,
)
from nanodistill.student.generate import generate_answers
from nanodistill.student.load import LoadedStudent


@dataclass(frozen=True)
class TestExample:
    __test__: ClassVar[bool] = False

    input: str
    output: str
    teacher_output: str | None = None


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
    student_texts: list[str],
    base_texts: list[str] | None,
) -> list[ExampleResult]:
    golds = [e.output for _, e in chunk]
    student_scores = score(metric, golds, student_texts)
    base_scores = score(metric, golds, base_texts) if base_texts is not None else None
    results = []
    for j, (index, example) in enumerate(chunk):
        teacher = example.teacher_output
        results.append(
            ExampleResult(
                index=index,
                input=example.input,
                gold=example.output,
                student=student_texts[j],
                student_score=student_scores[j],
                base=base_texts[j] if base_texts is not None else None,
                base_score=base_scores[j] if base_scores is not None else None,
                teacher=teacher,
                teacher_score=score(metric, [example.output], [teacher])[0] if teacher is not None else None,
            )
        )
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
) -> ReportCard:
    """Score student (and base) on every source; the first source is the main one for the verdict.

    Test inputs nearly duplicating a `train_inputs` entry are dropped and counted as leakage.
    `on_progress(done, total)` counts examples answered by every model being compared.
    """
    if not sources:
        raise NanodistillError("sources is empty: give at least one test source with examples.")
    if batch_size < 1:
        raise NanodistillError(f"batch_size must be at least 1; got {batch_size}.")
    kept = _kept(sources, train_inputs, leakage_threshold)
    total = sum(len(k) for k in kept)
    if total == 0:
        raise NanodistillError(
            "no test examples to evaluate: every source is empty or nearly duplicates training inputs."
        )
    resolved = resolve_metric(metric, [s.examples[i].output for s, k in zip(sources, kept, strict=True) for i in k])
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
            base_texts = None
            if base is not None:
                base_answers = generate_answers(
                    base,
                    inputs,
                    instruction=instruction,
                    reasoning="none",
                    max_tokens=max_tokens,
                    temperature=0.0,
                )
                base_texts = [a.text for a in base_answers]
            out.extend(_score_chunk(resolved, chunk, [a.text for a in answers], base_texts))
            answered += len(chunk)
            on_progress(answered, total)
        if not complete:
            break
    cards = [
        build_source_card(source.name, resolved, out, leaked=len(source.examples) - len(indices))
        for source, indices, out in zip(sources, kept, results, strict=True)
    ]
    latency = Latency(
        ms_per_answer=1000 * student_wall / answered if answered else 0.0,
        tokens_per_s=tokens / student_wall if student_wall > 0 else 0.0,
        answers=answered,
        batch_size=batch_size,
    )
    return build_report_card(
        cards, latency=latency, training=training or {}, loss_plot_uri=loss_plot_uri, complete=complete
    )
