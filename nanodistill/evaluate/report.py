"""The report card: is the student better than the base model it started from, and how sure are we?

Built from per-example results, so every number on the card can be recomputed from the rows it
carries. The verdict is `ready` only when the paired bootstrap interval of (student - base) on
the main source lies above zero. With the seed-only baseline the card also says whether the
amplified data beat training on the seeds alone (student - seeds-only, paired the same way).
An answer the judge could not grade has no score: it is counted, and left out of every mean
and every paired difference it would be part of.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from nanodistill.evaluate.metrics import LabelTable, bootstrap_ci, label_table, paired_bootstrap_diff

SHOWN_EXAMPLES = 5
SHOWN_REASONS = 5
CELL_CHARS = 120


class Interval(BaseModel):
    """A mean with its 95% bootstrap interval."""

    mean: float
    low: float
    high: float


class ExampleResult(BaseModel):
    """One held-out example's answers and scores; a score is None where the judge left it unjudged."""

    index: int
    input: str
    gold: str
    student: str
    student_score: float | None
    base: str | None = None
    base_score: float | None = None
    seeds_only: str | None = None
    seeds_only_score: float | None = None
    teacher: str | None = None
    teacher_score: float | None = None
    reasons: dict[str, str] = {}


class SourceCard(BaseModel):
    """One test source: its scores, the paired student-vs-base difference, and example rows."""

    name: str
    size: int
    leaked: int
    metric: str
    student: Interval | None
    base: Interval | None
    difference: Interval | None
    seeds_only: Interval | None = None
    seeds_only_difference: Interval | None = None
    unjudged: int = 0
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


class JudgeReason(BaseModel):
    source: str
    index: int
    model: str
    score: float | None
    reason: str


class JudgeSummary(BaseModel):
    """What grading with the teacher cost, how many answers it could not grade, and a few of its reasons."""

    teacher: str
    answers: int
    unjudged: int
    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    max_cost_usd: float | None = None
    over_budget: int = 0
    reasons: list[JudgeReason] = []


class SeedsOnly(BaseModel):
    """How the seed-only baseline was trained: the model's options on the dataset's seed rows alone."""

    n_seeds: int
    iters: int
    changed: dict[str, Any]
    best_val_loss: float | None
    adapter_path: str


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
    metric: str = ""
    metric_note: str = ""
    amplification: str | None = None
    judge: JudgeSummary | None = None
    seeds_only: SeedsOnly | None = None


def _interval(scores: Sequence[float]) -> Interval | None:
    if not scores:
        return None
    low, high = bootstrap_ci(scores)
    return Interval(mean=sum(scores) / len(scores), low=low, high=high)


def _side_by_side(examples: list[ExampleResult]) -> tuple[list[ExampleResult], list[ExampleResult]]:
    """Best by student score (ties: largest lead over base), worst from the rest, at most 5 each;
    unjudged answers are in neither."""

    def lead(e: ExampleResult) -> float:
        return (e.student_score or 0.0) - (e.base_score or 0.0)

    judged = [e for e in examples if e.student_score is not None]
    ranked = sorted(judged, key=lambda e: (-(e.student_score or 0.0), -lead(e), e.index))
    best = ranked[: min(SHOWN_EXAMPLES, math.ceil(len(ranked) / 2))]
    rest = sorted(ranked[len(best) :], key=lambda e: (e.student_score or 0.0, lead(e), e.index))
    return best, rest[:SHOWN_EXAMPLES]


def _against(examples: list[ExampleResult], model: str) -> tuple[Interval | None, Interval | None]:
    """A baseline's interval and the paired student - baseline difference, over the examples where both
    were scored; (None, None) unless the baseline answered every example."""
    if not examples or any(getattr(e, model) is None for e in examples):
        return None, None
    scores = [s for e in examples if (s := getattr(e, f"{model}_score")) is not None]
    pairs = [
        (e.student_score, other)
        for e in examples
        if e.student_score is not None and (other := getattr(e, f"{model}_score")) is not None
    ]
    if not pairs:
        return _interval(scores), None
    mean, low, high = paired_bootstrap_diff([p[0] for p in pairs], [p[1] for p in pairs])
    return _interval(scores), Interval(mean=mean, low=low, high=high)


def _scored(e: ExampleResult) -> list[float | None]:
    """The scores of the answers this example has (student, baselines, teacher); None: unjudged."""
    answers = (
        (e.student, e.student_score),
        (e.base, e.base_score),
        (e.seeds_only, e.seeds_only_score),
        (e.teacher, e.teacher_score),
    )
    return [value for text, value in answers if text is not None]


def build_source_card(name: str, metric: str, examples: list[ExampleResult], leaked: int) -> SourceCard:
    """Scores, intervals, teacher agreement and label table for one source's scored examples."""
    student_scores = [e.student_score for e in examples if e.student_score is not None]
    base, difference = _against(examples, "base")
    seeds_only, seeds_only_difference = _against(examples, "seeds_only")
    teacher_scores = [e.teacher_score for e in examples if e.teacher_score is not None]
    best, worst = _side_by_side(examples)
    return SourceCard(
        name=name,
        size=len(examples),
        leaked=leaked,
        metric=metric,
        student=_interval(student_scores),
        base=base,
        difference=difference,
        seeds_only=seeds_only,
        seeds_only_difference=seeds_only_difference,
        unjudged=sum(v is None for e in examples for v in _scored(e)),
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
    if main.student is None:
        return False, f"None of the student's answers on {main.name!r} could be graded ({main.unjudged} unjudged)."
    if main.difference is None:
        return False, f"No base-model comparison on {main.name!r}, so improvement is unproven."
    d = main.difference
    span = f"student - base = {d.mean:+.3f} (95% CI {d.low:+.3f} to {d.high:+.3f}) on {main.name!r}"
    if d.low > 0:
        return True, f"{span}; the whole interval is above zero."
    return False, f"{span}; the interval does not exclude no improvement."


def _amplification(main: SourceCard) -> str | None:
    """Whether the amplified data beat training on the seeds alone, said plainly."""
    d = main.seeds_only_difference
    if d is None or main.seeds_only is None or main.student is None:
        return None
    order = f"seeds-only {_ci(main.seeds_only)}, student {_ci(main.student)}"
    if main.base is not None:
        order = f"base {_ci(main.base)}, {order}"
    span = f"student - seeds-only = {d.mean:+.3f} (95% CI {d.low:+.3f} to {d.high:+.3f})"
    if d.low > 0:
        return f"Amplification helped: {span} on {main.name!r}; {order}."
    if d.high < 0:
        return f"Amplification hurt: the seeds-only student did better, {span} on {main.name!r}; {order}."
    return f"Amplification did not help measurably: {span} on {main.name!r} does not exclude zero; {order}."


def build_report_card(
    sources: list[SourceCard],
    *,
    latency: Latency,
    training: dict[str, Any],
    loss_plot_uri: str | None,
    complete: bool = True,
    metric_note: str = "",
) -> ReportCard:
    """The card; the first source is the main one the verdict rests on."""
    main = sources[0]
    ready, verdict = _verdict(main, complete)
    amplification = _amplification(main) if complete else None
    return ReportCard(
        ready=ready,
        verdict=f"{verdict} {amplification}" if amplification else verdict,
        main_source=main.name,
        complete=complete,
        sources=sources,
        latency=latency,
        leakage_dropped=sum(s.leaked for s in sources),
        training=training,
        loss_plot_uri=loss_plot_uri,
        metric=main.metric,
        metric_note=metric_note,
        amplification=amplification,
    )


def judge_summary(teacher: str, sources: list[SourceCard]) -> JudgeSummary:
    """How many answers the judge saw and left unjudged, and a few of its reasons for the student's
    answers (worst first, then best); the job adds what the calls cost."""
    reasons: list[JudgeReason] = []
    for source in sources:
        seen: set[int] = set()
        for e in [*source.worst, *source.best, *source.examples]:
            reason = e.reasons.get("student")
            if reason and e.index not in seen and len(reasons) < SHOWN_REASONS:
                seen.add(e.index)
                reasons.append(
                    JudgeReason(
                        source=source.name, index=e.index, model="student", score=e.student_score, reason=reason
                    )
                )
    return JudgeSummary(
        teacher=teacher,
        answers=sum(len(_scored(e)) for s in sources for e in s.examples),
        unjudged=sum(s.unjudged for s in sources),
        reasons=reasons,
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


def _scores_section(card: ReportCard) -> list[str]:
    """The score table; seed-only columns appear only when that baseline was trained."""
    with_seeds = any(s.seeds_only is not None for s in card.sources)
    header = ["source", "examples", "metric", "base", "student", "student - base", "teacher agreement"]
    if with_seeds:
        header[4:4] = ["seeds-only"]
        header.insert(7, "student - seeds-only")
    rows = []
    for s in card.sources:
        row = [
            _cell(s.name),
            str(s.size),
            s.metric,
            _ci(s.base),
            _ci(s.student),
            _ci(s.difference, signed=True),
            _num(s.teacher_agreement),
        ]
        if with_seeds:
            row[4:4] = [_ci(s.seeds_only)]
            row.insert(7, _ci(s.seeds_only_difference, signed=True))
        rows.append(row)
    lines = ["## Scores", ""]
    if card.metric_note:
        lines += [f"Metric: **{card.metric}**. {card.metric_note}", ""]
    return lines + _table(header, rows)


def _judge_section(judge: JudgeSummary) -> list[str]:
    cost = "unpriced" if judge.cost_usd is None else f"${judge.cost_usd:.6f}"
    lines = [
        "## Judge",
        "",
        f"- Teacher: {_cell(judge.teacher)}; {judge.answers} answers graded, {judge.unjudged} left unjudged "
        "(no usable grade after one retry; left out of the means).",
        f"- Cost of judging: {cost} over {judge.calls} calls ({judge.cached_calls} more from the cache), "
        f"{judge.prompt_tokens} prompt and {judge.completion_tokens} completion tokens.",
    ]
    if judge.max_cost_usd is not None:
        lines.append(
            f"- Budget: max_cost_usd={judge.max_cost_usd:g}; {judge.over_budget} answers left unjudged when it ran out."
        )
    lines.append("")
    if judge.reasons:
        lines += _table(
            ["source", "#", "model", "score", "reason"],
            [[_cell(r.source), str(r.index), r.model, _num(r.score), _cell(r.reason)] for r in judge.reasons],
        )
        lines.append("")
    return lines


def _seeds_only_section(seeds: SeedsOnly) -> list[str]:
    changed = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in seeds.changed.items())
    return [
        "## Seed-only baseline",
        "",
        f"Trained with this model's options on its {seeds.n_seeds} seed examples alone for {seeds.iters} "
        f"iterations (best validation loss {_num(seeds.best_val_loss)})"
        + (f"; changed to fit so few rows: {changed}." if changed else "."),
        "",
    ]


def render_markdown(card: ReportCard) -> str:
    """The card as Markdown for a human: verdict, score table, labels, examples, cost, training."""
    lines = ["# Student report card", "", f"**{'READY' if card.ready else 'NOT READY'}**: {card.verdict}", ""]
    lines += _scores_section(card)
    lines += ["", "Intervals are 95% bootstrap intervals; the difference is paired per example.", ""]
    if card.seeds_only is not None:
        lines += _seeds_only_section(card.seeds_only)
    if card.judge is not None:
        lines += _judge_section(card.judge)
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
