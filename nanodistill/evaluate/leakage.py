"""The leakage check: a test input the student saw (nearly) verbatim in training proves nothing.

The student is already trained, so it is the test side that gives way: test examples whose
input nearly duplicates a training input are dropped from the evaluation and counted.
"""

from __future__ import annotations

from collections.abc import Sequence

from nanodistill.data.similarity import NearDuplicateIndex


def drop_leaked(
    train_inputs: Sequence[str], test_inputs: Sequence[str], threshold: float = 0.9
) -> tuple[list[int], list[int]]:
    """(kept, dropped) indices into `test_inputs`; dropped ones are within `threshold` Jaccard of a
    training input."""
    index = NearDuplicateIndex(threshold=threshold)
    for text in train_inputs:
        index.add(text)
    kept: list[int] = []
    dropped: list[int] = []
    for i, text in enumerate(test_inputs):
        (dropped if index.find(text) is not None else kept).append(i)
    return kept, dropped
