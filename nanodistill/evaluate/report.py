"""The report card: is the student better than the base model it started from, and how sure are we?

Built from per-example results, so every number on the card can be recomputed from the rows it
carries. The verdict is `ready` only when the paired bootstrap interval of (student - base) on
the main source lies above zero.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from nanodistill.evaluate.metrics import LabelTable, bootstrap_ci, label_table, paired_bootstrap_diff

SHOWN_EXAMPLES = 5
CELL_CHARS = 120


class Interval(BaseModel):
    """A mean with its 95% bootstrap interval."""

    mean: float
    low: float
    high: float


class ExampleResult(BaseModel):
    index: int
    input: str
    gold: str
    student: str
    student_score: float
    base: str | None = None
    base_score: float | None = None
    teacher: str | None = None
    teacher_score: float | None = None


class SourceCard(BaseModel):
    """One test source: its scores, the paired student-vs-base difference, and example rows."""

    name: str
    size: int
    leaked: int
    metric: str
    student: Interval | None
    base: Interval | None
    difference: Interval | None
    teacher_agreement: float | None
    teacher_examples: int
    labels: LabelTable | None
    best: list[ExampleResult]
    worst: list[ExampleResult]
    examples: list[ExampleResult]


class Latency(BaseModel):
    """Student generation cost over the evaluation; batched answers share their batch's time."""

    ms_per_answer: float
    tokens_per_s: float
    answers: int
    batch_size: int


class ReportCard(BaseModel):
    ready: bool
    verdict: str
    main_source: str
    complete: bool
    sources: list[SourceCard]
    latency: Latency
    leakage_dropped: int
    training: dict[str, Any]
    loss_plot_uri: str | None


def _interval(scores: Sequence[float]) -> Interval | None:
    if not scores:
        return None
    low, high = bootstrap_ci(scores)
    return Interval(mean=sum(scores) / len(scores), low=low, high=high)


def _side_by_side(examples: list[ExampleResult]) -> tuple[list[ExampleResult], list[ExampleResult]]:
    """Best by student score (ties: largest lead over base), worst from the rest, at most 5 each."""

    def lead(e: ExampleResult) -> float:
        return e.student_score - (e.base_score or 0.0)

    ranked = sorted(examples, key=lambda e: (-e.student_score, -lead(e), e.index))
    best = ranked[: min(SHOWN_EXAMPLES, math.ceil(len(ranked) / 2))]
    rest = sorted(ranked[len(best) :], key=lambda e: (e.student_score, lead(e), e.index))
    return best, rest[:SHOWN_EXAMPLES]


def build_source_card(name: str, metric: str, examples: list[ExampleResult], leaked: int) -> SourceCard:
    """Scores, intervals, teacher agreement and label table for one source's scored examples."""
    student_scores = [e.student_score for e in examples]
    base_scores = [e.base_score for e in examples if e.base_score is not None]
    paired = len(base_scores) == len(examples) and bool(examples)
    difference = None
    if paired:
        mean, low, high = paired_bootstrap_diff(student_scores, base_scores)
        difference = Interval(mean=mean, low=low, high=high)
    teacher_scores = [e.teacher_score for e in examples if e.teacher_score is not None]
    best, worst = _side_by_side(examples)
    return SourceCard(
        name=name,
        size=len(examples),
        leaked=leaked,
        metric=metric,
        student=_interval(student_scores),
        base=_interval(base_scores) if paired else None,
        difference=difference,
        teacher_agreement=sum(teacher_scores) / len(teacher_scores) if teacher_scores else None,
        teacher_examples=len(teacher_scores),
        labels=label_table([e.gold for e in examples], [e.student for e in examples])
        if metric == "label" and examples
        else None,
        best=best,
        worst=worst,
        examples=examples,
    )


def _verdict(main: SourceCard, complete: bool) -> tuple[bool, str]:
    if not complete:
        return False, "Evaluation stopped before every example was answered; the numbers cover part of it."
    if not main.size:
        return False, f"No test examples left in {main.name!r} to judge the student on."
    if main.difference is None:
        return False, f"No base-model comparison on {main.name!r}, so improvement is unproven."
    d = main.difference
    span = f"student - base = {d.mean:+.3f} (95% CI {d.low:+.3f} to {d.high:+.3f}) on {main.name!r}"
    if d.low > 0:
        return True, f"{span}; the whole interval is above zero."
    return False, f"{span}; the interval does not exclude no improvement."


def build_report_card(
    sources: list[SourceCard],
    *,
    latency: Latency,
    training: dict[str, Any],
    loss_plot_uri: str | None,
    complete: bool = True,
) -> ReportCard:
    """The card; the first source is the main one the verdict rests on."""
    main = sources[0]
    ready, verdict = _verdict(main, complete)
    return ReportCard(
        ready=ready,
        verdict=verdict,
        main_source=main.name,
        complete=complete,
        sources=sources,
        latency=latency,
        leakage_dropped=sum(s.leaked for s in sources),
        training=training,
        loss_plot_uri=loss_plot_uri,
    )


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _ci(interval: Interval | None, signed: bool = False) -> str:
    if interval is None:
        return "–"
    fmt = "{:+.3f}" if signed else "{:.3f}"
    return f"{fmt.format(interval.mean)} [{fmt.format(interval.low)}, {fmt.format(interval.high)}]"


def _cell(text: str | None) -> str:
    """One table cell: a single printable line, truncated, with pipes and tags neutralised."""
    if text is None:
        return "–"
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if len(flat) > CELL_CHARS:
        flat = flat[: CELL_CHARS - 1] + "…"
    return flat.replace("|", "\\|").replace("<", "&lt;")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _label_section(source: SourceCard, labels: LabelTable) -> list[str]:
    lines = [f"### Labels: {source.name}", "", f"Accuracy {labels.accuracy:.3f}.", ""]
    lines += _table(
        ["label", "precision", "recall", "F1", "support"],
        [[_cell(r.label), _num(r.precision), _num(r.recall), _num(r.f1), str(r.support)] for r in labels.labels],
    )
    columns = list(next(iter(labels.confusion.values()), {}))
    lines += ["", "Confusion (rows: gold, columns: student):", ""]
    lines += _table(
        ["gold \\ student", *(_cell(c) for c in columns)],
        [[_cell(gold), *(str(row[c]) for c in columns)] for gold, row in labels.confusion.items()],
    )
    return [*lines, ""]


def _examples_section(title: str, rows: list[ExampleResult]) -> list[str]:
    if not rows:
        return []
    table = _table(
        ["#", "input", "gold", "student", "score", "base", "base score"],
        [
            [
                str(e.index),
                _cell(e.input),
                _cell(e.gold),
                _cell(e.student),
                _num(e.student_score),
                _cell(e.base),
                _num(e.base_score),
            ]
            for e in rows
        ],
    )
    return [f"### {title}", "", *table, ""]


def render_markdown(card: ReportCard) -> str:
    """The card as Markdown for a human: verdict, score table, labels, examples, cost, training."""
    lines = ["# Student report card", "", f"**{'READY' if card.ready else 'NOT READY'}**: {card.verdict}", ""]
    lines += ["## Scores", ""]
    lines += _table(
        ["source", "examples", "metric", "base", "student", "student - base", "teacher agreement"],
        [
            [
                _cell(s.name),
                str(s.size),
                s.metric,
                _ci(s.base),
                _ci(s.student),
                _ci(s.difference, signed=True),
                _num(s.teacher_agreement),
            ]
            for s in card.sources
        ],
    )
    lines += ["", "Intervals are 95% bootstrap intervals; the difference is paired per example.", ""]
    for source in card.sources:
        if source.labels is not None:
            lines += _label_section(source, source.labels)
    for source in card.sources:
        lines += _examples_section(f"Best answers: {source.name}", source.best)
        lines += _examples_section(f"Worst answers: {source.name}", source.worst)
    lat = card.latency
    lines += [
        "## Cost and hygiene",
        "",
        f"- Latency: {lat.ms_per_answer:.1f} ms per answer, {lat.tokens_per_s:.1f} tokens/s "
        f"({lat.answers} answers, batches of up to {lat.batch_size}).",
        f"- Leakage: {card.leakage_dropped} test examples dropped as near-duplicates of training inputs.",
        "",
    ]
    if card.training:
        lines += ["## Training", ""]
        lines += _table(
            ["setting", "value"],
            [
                [_cell(k), _cell(json.dumps(v, default=str) if isinstance(v, dict | list | tuple) else str(v))]
                for k, v in card.training.items()
            ],
        )
        lines.append("")
    if card.loss_plot_uri:
        lines += ["## Loss", "", f"![loss]({card.loss_plot_uri})", ""]
    return "\n".join(lines)
