"""The leakage check: a test input the student saw (nearly) verbatim in training proves nothing.

Before training, it is the training side that gives way: rows whose input nearly duplicates a
held-out or test input are left out of training (`split_leaked`, roles: candidates = training
rows, reference = test inputs). After training, the test side gives way: test examples nearly
duplicating a training input are dropped from the evaluation (`drop_leaked`). Both are counted.
"""

from __future__ import annotations

from collections.abc import Sequence

from nanodistill.data.similarity import NearDuplicateIndex


def split_leaked(
    reference: Sequence[str], candidates: Sequence[str], threshold: float = 0.9
) -> tuple[list[int], list[int]]:
    """(kept, dropped) indices into `candidates`; dropped ones are within `threshold` Jaccard of a
    reference text."""
    index = NearDuplicateIndex(threshold=threshold)
    for text in reference:
        index.add(text)
    kept: list[int] = []
    dropped: list[int] = []
    for i, text in enumerate(candidates):
        (dropped if index.find(text) is not None else kept).append(i)
    return kept, dropped


def drop_leaked(
    train_inputs: Sequence[str], test_inputs: Sequence[str], threshold: float = 0.9
) -> tuple[list[int], list[int]]:
    """(kept, dropped) indices into `test_inputs`: test examples nearly duplicating a training input."""
    return split_leaked(train_inputs, test_inputs, threshold)
