"""Which synthetic examples form the held-out test slice.

The slice is `test_fraction` of the synthetic examples, raised to at least 50 when that is no
more than a quarter of them (fewer than 50 test rows give noisy scores), else to a quarter; with
fewer than 20 synthetic examples there is no slice. Test rows are spread evenly through
acceptance order, so a job stopped early still has its share, and a resumed job, which knows how
many it accepted before, continues the same pattern.
"""

from __future__ import annotations

MIN_TEST = 50
MIN_SYNTHETIC_FOR_TEST = 20


def held_out_size(synthetic: int, test_fraction: float) -> int:
    """How many of `synthetic` examples are marked test."""
    if test_fraction <= 0 or synthetic < MIN_SYNTHETIC_FOR_TEST:
        return 0
    return max(round(synthetic * test_fraction), min(MIN_TEST, synthetic // 4))


def is_held_out(index: int, synthetic: int, test_size: int) -> bool:
    """Whether the synthetic example accepted `index`-th (0-based) is a test row; evenly spaced."""
    if test_size <= 0 or index >= synthetic:
        return False
    return (index + 1) * test_size // synthetic > index * test_size // synthetic
