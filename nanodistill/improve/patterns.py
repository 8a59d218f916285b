"""What a report card says the student gets wrong, as patterns the teacher may see.

The held-out rows themselves never leave the card: the teacher is told which gold labels the
student misses (and what it says instead), which input lengths fail most, and the kinds of
mistakes (empty, off-label, too long, too short), never an input or a free-text gold answer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nanodistill.amplify.parse import closed_labels
from nanodistill.data.similarity import normalize
from nanodistill.evaluate.report import ExampleResult, ReportCard
from nanodistill.train.data import TrainRow

BUCKETS: tuple[tuple[int, int | None], ...] = ((0, 9), (10, 29), (30, 79), (80, None))
SEED_LIMIT = 12


def words(text: str) -> int:
    return len(text.split())


def bucket_of(text: str) -> tuple[int, int | None]:
    n = words(text)
    return next(b for b in BUCKETS if b[0] <= n and (b[1] is None or n <= b[1]))


def bucket_name(bucket: tuple[int, int | None]) -> str:
    low, high = bucket
    return f"{low}+ words" if high is None else f"{low}-{high} words"


@dataclass
class FailureModes:
    """The student's failures on the card's main source, described without any held-out row."""

    source: str
    metric: str
    total: int
    failing: int
    labels: dict[str, str] | None = None
    missed: Counter[str] = field(default_factory=Counter)
    said_instead: dict[str, str] = field(default_factory=dict)
    weak_bucket: tuple[int, int | None] | None = None
    bucket_rates: dict[str, float] = field(default_factory=dict)
    mistakes: Counter[str] = field(default_factory=Counter)

    def targets(self, row: TrainRow) -> bool:
        """Whether a training row is of a kind the student fails on: it leads the teacher's examples."""
        if self.labels is not None and normalize(row.output) in {normalize(g) for g in self.missed}:
            return True
        return self.weak_bucket is not None and bucket_of(row.input) == self.weak_bucket

    def hint(self) -> str:
        """The focus paragraph added to the teacher's task description for this round."""
        lines = []
        for gold, n in self.missed.most_common():
            instead = f" (it answered {self.said_instead[gold]!r} instead)" if gold in self.said_instead else ""
            lines.append(f"- inputs whose correct output is {gold!r}: missed {n} times{instead}")
        if self.weak_bucket is not None:
            name = bucket_name(self.weak_bucket)
            lines.append(f"- inputs of {name}: {self.bucket_rates[name]:.0%} of them fail")
        for kind, n in self.mistakes.most_common():
            lines.append(f"- {kind}: {n} times")
        found = "\n".join(lines) or "- no single pattern stands out; write harder, more varied cases"
        return (
            f"A student model trained for this task fails {self.failing} of {self.total} test cases. "
            f"Its failures:\n{found}\nWhen writing new inputs, write cases of exactly these kinds, so that "
            "the student learns what it gets wrong."
        )

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "metric": self.metric,
            "failing": self.failing,
            "total": self.total,
            "missed_labels": dict(self.missed),
            "weak_length": bucket_name(self.weak_bucket) if self.weak_bucket else None,
            "failure_rate_by_length": self.bucket_rates,
            "mistakes": dict(self.mistakes),
        }


def _failing(scored: list[ExampleResult]) -> list[ExampleResult]:
    """0/1 metrics fail below 1; graded ones (chrf, judge) in their lowest third."""
    if all(e.student_score in (0.0, 1.0) for e in scored):
        return [e for e in scored if (e.student_score or 0.0) < 1.0]
    ranked = sorted(scored, key=lambda e: (e.student_score or 0.0, e.index))
    return ranked[: max(1, len(ranked) // 3)]


def failure_modes(card: ReportCard) -> FailureModes:
    main = card.sources[0]
    scored = [e for e in main.examples if e.student_score is not None]
    failing = _failing(scored)
    modes = FailureModes(source=main.name, metric=main.metric, total=len(scored), failing=len(failing))
    if not failing:
        return modes
    modes.labels = closed_labels([e.gold for e in scored])
    if modes.labels is not None:
        modes.missed = Counter(modes.labels.get(normalize(e.gold), e.gold) for e in failing)
        for gold in modes.missed:
            said = Counter(e.student.strip() for e in failing if normalize(e.gold) == normalize(gold))
            answer, _ = said.most_common(1)[0]
            if normalize(answer) in modes.labels:
                modes.said_instead[gold] = modes.labels[normalize(answer)]
    overall = len(failing) / len(scored)
    for bucket in BUCKETS:
        inside = [e for e in scored if bucket_of(e.input) == bucket]
        if len(inside) >= 2:
            modes.bucket_rates[bucket_name(bucket)] = sum(e in failing for e in inside) / len(inside)
    weakest = max(modes.bucket_rates.items(), key=lambda kv: kv[1], default=None)
    if weakest is not None and weakest[1] > overall:
        modes.weak_bucket = next(b for b in BUCKETS if bucket_name(b) == weakest[0])
    for e in failing:
        if not e.student.strip():
            modes.mistakes["empty answers"] += 1
        elif modes.labels is not None and normalize(e.student) not in modes.labels:
            modes.mistakes["answers that are not one of the task's labels"] += 1
        elif modes.labels is None and len(e.student) > 2 * len(e.gold):
            modes.mistakes["answers much longer than expected"] += 1
        elif modes.labels is None and 2 * len(e.student) < len(e.gold):
            modes.mistakes["answers much shorter than expected"] += 1
    return modes


def pick_seeds(rows: list[TrainRow], modes: FailureModes, limit: int = SEED_LIMIT) -> list[TrainRow]:
    """Training rows for the teacher's worked examples: those of the failing kinds first, then two of every
    label the training data has (so the closed label set stays whole), then the rest up to `limit`."""
    focus = [r for r in rows if modes.targets(r)]
    chosen = focus[: max(1, 2 * limit // 3)]
    rest = [r for r in rows if r not in chosen]
    if closed_labels([r.output for r in rows]) is not None:
        for label in dict.fromkeys(normalize(r.output) for r in rows):
            have = sum(normalize(r.output) == label for r in chosen)
            extra = [r for r in rest if normalize(r.output) == label][: max(0, 2 - have)]
            chosen += extra
            rest = [r for r in rest if r not in extra]
    return chosen + rest[: max(0, limit - len(chosen))]
