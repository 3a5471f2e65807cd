"""Near-duplicate rate of a dataset's answers: word 5-gram Jaccard similarity above 0.8."""

from __future__ import annotations

import re
from collections import defaultdict
from itertools import combinations


def shingles(text: str, n: int = 5) -> frozenset[tuple[str, ...]]:
    """Lower-cased word n-grams; texts shorter than n give one shingle of all their words."""
    words = re.findall(r"[a-z0-9']+", text.lower())
    if len(words) < n:
        return frozenset([tuple(words)])
    return frozenset(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def near_duplicate_share(texts: list[str], n: int = 5, threshold: float = 0.8) -> float:
    """Share of texts that have at least one other text with Jaccard > `threshold`."""
    sets = [shingles(t, n) for t in texts]
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, s in enumerate(sets):
        for g in s:
            index[g].append(i)
    candidates: set[tuple[int, int]] = set()
    for ids in index.values():
        if len(ids) < 200:  # very common n-grams alone do not make texts near-duplicates
            candidates.update(combinations(ids, 2))
    flagged: set[int] = set()
    for i, j in candidates:
        a, b = sets[i], sets[j]
        if len(a & b) / len(a | b) > threshold:
            flagged.update((i, j))
    return len(flagged) / len(texts) if texts else 0.0
