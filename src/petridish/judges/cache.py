"""Judging through the store's cache: stored judgments are reused, new ones committed in
batches, transient failures (timeouts, 5xx) left out so a later run retries them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from petridish.judges.base import Item, Judge, Judgment
from petridish.judges.rubrics import Rubric
from petridish.store.db import JudgmentCache, Store

BATCH = 256  # items per judge call and per transaction


def judge_cached(judge: Judge, items: Sequence[Item], rubrics: Sequence[Rubric], store: Store,
                 progress: Callable[[int], None] | None = None) -> dict[str, list[Judgment]]:
    """Per rubric, one judgment per item; only items not in the cache reach the judge.

    `progress` counts judgments (items × rubrics) settled; cached ones count at once.
    """
    cache = JudgmentCache(store)
    digests = [it.digest() for it in items]
    found: dict[str, dict[str, Judgment]] = {}
    for r in rubrics:
        rows = cache.get(judge.id, r.name, r.version, sorted(set(digests)))
        found[r.name] = {d: Judgment(score, judge.id, r.name, r.version, reason, mass, tin, tout)
                         for d, (score, reason, mass, tin, tout) in rows.items()}
    groups: dict[tuple[int, ...], dict[str, int]] = {}  # missing rubrics -> {digest: item}
    for i, d in enumerate(digests):
        missing = tuple(k for k, r in enumerate(rubrics) if d not in found[r.name])
        if missing:
            groups.setdefault(missing, {}).setdefault(d, i)
    if progress:
        progress(len(items) * len(rubrics) - sum(len(g) * len(m) for m, g in groups.items()))
    for missing, members in groups.items():
        wanted = [rubrics[k] for k in missing]
        todo = list(members.values())
        for start in range(0, len(todo), BATCH):
            batch = todo[start:start + BATCH]
            out = judge.judge([items[i] for i in batch], wanted, progress)
            new = []
            for r in wanted:
                for i, j in zip(batch, out[r.name], strict=True):
                    found[r.name][digests[i]] = j
                    if not j.transient:
                        new.append(((judge.id, r.name, r.version, digests[i]),
                                    (j.score, j.reason, j.mass, j.tokens_in, j.tokens_out)))
            cache.put(new)
    return {r.name: [found[r.name][d] for d in digests] for r in rubrics}
