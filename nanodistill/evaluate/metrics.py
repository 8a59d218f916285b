"""How a prediction is scored against its gold output, and how sure we are of the average.

Every scorer gives each example a score in [0, 1] so that one bootstrap and one paired
comparison serve all metrics (`judge`, the teacher grading answers, lives in `judge.py` since it
needs the network; this module only names it). `auto` picks the metric from the gold outputs
alone, before any prediction exists, so the choice can never flatter a model.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, get_args

import numpy as np
from pydantic import BaseModel

from nanodistill.errors import NanodistillError

MetricName = Literal["exact", "numeric", "json", "label", "chrf", "judge"]
METRICS: tuple[MetricName, ...] = get_args(MetricName)
REL_TOL = 1e-4
ABS_TOL = 1e-6
OTHER_LABEL = "(other)"
MAX_LABEL_WORDS = 4
MAX_LABEL_CHARS = 40

_NUMBER = re.compile(r"[-+]?\$?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?%?")
_NUMBER_IN_TEXT = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


class LabelRow(BaseModel):
    label: str
    precision: float
    recall: float
    f1: float
    support: int


class LabelTable(BaseModel):
    """Accuracy, per-label precision/recall/F1 and a confusion table (gold label → predicted → count).

    Predictions that are none of the gold labels are counted under `(other)`.
    """

    accuracy: float
    labels: list[LabelRow]
    confusion: dict[str, dict[str, int]]


def normalize_text(text: str) -> str:
    """Case, surrounding whitespace/quotes/final period and repeated spaces never decide a match."""
    return " ".join(text.casefold().split()).strip(" .\"'`")


def parse_number(text: str) -> float | None:
    """The whole text as one number ('1,234.5', '$3', '40%', '-2e3'), or None."""
    stripped = text.strip().rstrip(".")
    if not stripped or not _NUMBER.fullmatch(stripped) or not any(c.isdigit() for c in stripped):
        return None
    return float(stripped.replace(",", "").replace("$", "").rstrip("%"))


def extract_number(text: str) -> float | None:
    """The number a prediction commits to: the whole text if it is one, else the last number in it."""
    whole = parse_number(text)
    if whole is not None:
        return whole
    found = _NUMBER_IN_TEXT.findall(text)
    return float(found[-1].replace(",", "")) if found else None


def parse_json_object(text: str) -> dict[str, Any] | None:
    """A JSON object from the text, tolerating code fences and prose around the braces."""
    stripped = _FENCE.sub("", text.strip())
    candidates = [stripped]
    start, end = stripped.find("{"), stripped.rfind("}")
    if 0 <= start < end:
        candidates.append(stripped[start : end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def exact_score(gold: str, pred: str) -> float:
    return float(normalize_text(gold) == normalize_text(pred))


def numeric_score(gold: str, pred: str) -> float:
    expected, got = extract_number(gold), extract_number(pred)
    if expected is None or got is None:
        return exact_score(gold, pred)
    return float(math.isclose(got, expected, rel_tol=REL_TOL, abs_tol=ABS_TOL))


def _values_match(gold: Any, pred: Any) -> bool:
    if isinstance(gold, bool) or isinstance(pred, bool):
        return gold == pred
    if isinstance(gold, int | float) and isinstance(pred, int | float):
        return math.isclose(pred, gold, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if isinstance(gold, str) and isinstance(pred, str):
        return normalize_text(gold) == normalize_text(pred)
    return bool(gold == pred)


def json_score(gold: str, pred: str) -> float:
    """Fraction of the gold object's top-level fields the prediction reproduces."""
    expected = parse_json_object(gold)
    if expected is None:
        return exact_score(gold, pred)
    got = parse_json_object(pred)
    if got is None:
        return 0.0
    if not expected:
        return float(not got)
    matched = sum(1 for key, value in expected.items() if key in got and _values_match(value, got[key]))
    return matched / len(expected)


@lru_cache(maxsize=1)
def _chrf() -> Any:
    from sacrebleu.metrics import CHRF

    return CHRF()


def chrf_score(gold: str, pred: str) -> float:
    """sacrebleu's sentence chrF (character 6-grams, beta 2, whitespace ignored) scaled to [0, 1].
    Two empty texts are the one case sacrebleu leaves at 0 though they agree: they score 1."""
    if not gold.strip() and not pred.strip():
        return 1.0
    return min(1.0, max(0.0, float(_chrf().sentence_score(pred, [gold]).score) / 100))


_SCORERS = {
    "exact": exact_score,
    "numeric": numeric_score,
    "json": json_score,
    "label": exact_score,
    "chrf": chrf_score,
}


def _looks_like_label(text: str) -> bool:
    norm = normalize_text(text)
    return 0 < len(norm) <= MAX_LABEL_CHARS and len(norm.split()) <= MAX_LABEL_WORDS


def pick_metric(gold_outputs: Sequence[str]) -> MetricName:
    """numeric if every gold is a number, json if every gold is an object, label if golds are
    short and repeat (at most half as many distinct values as examples), exact if they are short
    and distinct, else (free text: some gold is longer than a label) chrf."""
    if not gold_outputs:
        raise NanodistillError("metric 'auto' needs at least one test example with a gold output.")
    if all(parse_number(gold) is not None for gold in gold_outputs):
        return "numeric"
    if all(parse_json_object(gold) is not None for gold in gold_outputs):
        return "json"
    if not all(_looks_like_label(gold) for gold in gold_outputs):
        return "chrf"
    distinct = {normalize_text(gold) for gold in gold_outputs}
    return "label" if len(distinct) <= len(gold_outputs) / 2 else "exact"


_WHY = {
    "numeric": "every gold answer is a number",
    "json": "every gold answer is a JSON object",
    "label": "the gold answers are short and repeat (a label set)",
    "exact": "the gold answers are short and distinct (exact match after normalising case and spacing)",
}


@dataclass(frozen=True)
class MetricChoice:
    """The metric a card is scored with, and a sentence saying how it was chosen."""

    name: MetricName
    note: str


def choose_metric(metric: str, gold_outputs: Sequence[str], teacher: str | None = None) -> MetricChoice:
    """`auto` resolved from the golds (free text is judged when a teacher is given, else scored by chrf);
    any other name checked, `judge` only with a teacher."""
    if metric == "auto":
        picked = pick_metric(gold_outputs)
        if picked != "chrf":
            return MetricChoice(picked, f"auto picked {picked}: {_WHY[picked]}.")
        if teacher:
            return MetricChoice("judge", f"auto picked judge: the gold answers are free text, graded by {teacher}.")
        return MetricChoice(
            "chrf",
            "auto picked chrf: the gold answers are free text and no teacher was given to judge them "
            "(pass teacher for metric judge).",
        )
    for name in METRICS:
        if metric == name:
            if name == "judge" and not teacher:
                raise NanodistillError("metric 'judge' needs a teacher to grade the answers; pass teacher.")
            by = f" by {teacher}" if name == "judge" else ""
            return MetricChoice(name, f"metric {name}{by}, as asked.")
    raise NanodistillError(f"metric must be one of auto, {', '.join(METRICS)}; got {metric!r}.")


def score(metric: str, golds: Sequence[str], preds: Sequence[str]) -> list[float]:
    """Per-example scores in [0, 1] under one offline metric (not `auto`: choose it first; not `judge`:
    that one asks the teacher, see judge.py)."""
    if len(golds) != len(preds):
        raise NanodistillError(f"score needs one prediction per gold output: {len(golds)} vs {len(preds)}.")
    scorer = _SCORERS.get(metric)
    if scorer is None:
        raise NanodistillError(f"metric must be one of {', '.join(_SCORERS)}; got {metric!r}.")
    return [scorer(gold, pred) for gold, pred in zip(golds, preds, strict=True)]


def label_table(golds: Sequence[str], preds: Sequence[str]) -> LabelTable:
    """Classification view of label predictions; labels spelt as first seen among the golds."""
    if len(golds) != len(preds):
        raise NanodistillError(f"label_table needs one prediction per gold: {len(golds)} vs {len(preds)}.")
    spelling: dict[str, str] = {}
    for gold in golds:
        spelling.setdefault(normalize_text(gold), gold.strip())
    pairs = [(normalize_text(g), normalize_text(p)) for g, p in zip(golds, preds, strict=True)]
    pairs = [(g, p if p in spelling else OTHER_LABEL) for g, p in pairs]
    columns = [*spelling, *([OTHER_LABEL] if any(p == OTHER_LABEL for _, p in pairs) else [])]
    confusion = {spelling[g]: {spelling.get(c, c): 0 for c in columns} for g in spelling}
    for g, p in pairs:
        confusion[spelling[g]][spelling.get(p, p)] += 1
    rows = []
    for key, label in spelling.items():
        tp = sum(1 for g, p in pairs if g == key and p == key)
        predicted = sum(1 for _, p in pairs if p == key)
        support = sum(1 for g, _ in pairs if g == key)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(LabelRow(label=label, precision=precision, recall=recall, f1=f1, support=support))
    accuracy = sum(1 for g, p in pairs if g == p) / len(pairs) if pairs else 0.0
    return LabelTable(accuracy=accuracy, labels=rows, confusion=confusion)


def _require_scores(scores: Sequence[float], name: str) -> np.ndarray:
    if not scores:
        raise NanodistillError(f"{name} is empty: a confidence interval needs at least one scored example.")
    return np.asarray(scores, dtype=np.float64)


def bootstrap_ci(scores: Sequence[float], n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean score; same seed, same interval."""
    values = _require_scores(scores, "scores")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def paired_bootstrap_diff(
    student_scores: Sequence[float], base_scores: Sequence[float], n: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of (student - base) per example and its 95% interval, resampling examples as pairs."""
    if len(student_scores) != len(base_scores):
        raise NanodistillError(
            f"paired comparison needs scores for the same examples: {len(student_scores)} vs {len(base_scores)}."
        )
    diffs = _require_scores(student_scores, "student_scores") - _require_scores(base_scores, "base_scores")
    low, high = bootstrap_ci(diffs.tolist(), n=n, seed=seed)
    return float(diffs.mean()), low, high
