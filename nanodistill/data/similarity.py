"""Near-duplicate detection by character n-gram Jaccard similarity.

Used twice with one meaning: amplification drops new inputs too close to anything kept, and
evaluation drops training rows too close to a test input (the leakage check).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict

_SPACE = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")


def normalize(text: str) -> str:
    """Lowercase, drop punctuation, collapse whitespace: 'Hello,  World!' == 'hello world'."""
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


def shingles(text: str, n: int = 3) -> frozenset[str]:
    norm = normalize(text)
    if len(norm) <= n:
        return frozenset([norm])
    return frozenset(norm[i : i + n] for i in range(len(norm) - n + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


class NearDuplicateIndex:
    """Texts kept so far, answering 'is this within `threshold` Jaccard of one of them?'.

    Prefix filtering keeps lookups sub-linear: two sets with Jaccard >= t must share one of the
    first |A| - ceil(t*|A|) + 1 shingles of A in any fixed global order.
    """

    def __init__(self, threshold: float = 0.9, n: int = 3) -> None:
        self.threshold = threshold
        self.n = n
        self._sets: list[frozenset[str]] = []
        self._texts: list[str] = []
        self._postings: dict[str, list[int]] = defaultdict(list)

    def __len__(self) -> int:
        return len(self._sets)

    def _prefix(self, grams: frozenset[str]) -> list[str]:
        ordered = sorted(grams)
        keep = len(ordered) - math.ceil(self.threshold * len(ordered)) + 1
        return ordered[: max(keep, 1)]

    def find(self, text: str) -> str | None:
        """The kept text this one nearly duplicates, or None."""
        grams = shingles(text, self.n)
        seen: set[int] = set()
        for gram in self._prefix(grams):
            for idx in self._postings.get(gram, ()):
                if idx in seen:
                    continue
                seen.add(idx)
                if jaccard(grams, self._sets[idx]) >= self.threshold:
                    return self._texts[idx]
        return None

    def add(self, text: str) -> None:
        grams = shingles(text, self.n)
        idx = len(self._sets)
        self._sets.append(grams)
        self._texts.append(text)
        for gram in self._prefix(grams):
            self._postings[gram].append(idx)

    def add_if_new(self, text: str) -> bool:
        """Keep `text` unless it nearly duplicates something kept; True when kept."""
        if self.find(text) is not None:
            return False
        self.add(text)
        return True
