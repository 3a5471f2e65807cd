"""How well a score separates two kinds of text (own vs foreign, trained-on vs held back):
AUROC with a bootstrap over questions (texts of one question correlate), a logistic model of
several scores cross-validated by question, and a probe's AUROC over random splits grouped by
question. RESEARCH.md §5: a self-report counts only above the cheap baseline."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from petridish.judges.bootstrap import RESAMPLES


@dataclass(frozen=True)
class Separation:
    """AUROC of `score` for positives over negatives; `low`/`high` from `interval`; n counts
    positives and negatives; `unscored` texts had no score."""

    value: float
    low: float
    high: float
    n_pos: int
    n_neg: int
    unscored: int
    interval: str = "bootstrap-question"


def _wins(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """`[n_pos, n_neg]`: 1 where the positive scores higher, 0.5 on ties, else 0."""
    d = pos[:, None] - neg[None, :]
    return (d > 0).astype(float) + 0.5 * (d == 0)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    if y.all() or not y.any():
        return math.nan
    return float(_wins(s[y], s[~y]).mean())


def separation(scores: Sequence[float | None], labels: Sequence[bool], groups: Sequence[str],
               seed: int = 0, resamples: int = RESAMPLES, level: float = 0.95) -> Separation:
    """AUROC and its percentile interval with groups (questions) resampled with replacement;
    rows whose score is None are unscored and left out."""
    keep = [i for i, s in enumerate(scores) if s is not None and not math.isnan(s)]
    s = np.asarray([scores[i] for i in keep], dtype=float)
    y = np.asarray([labels[i] for i in keep], dtype=bool)
    g = [groups[i] for i in keep]
    unscored = len(scores) - len(keep)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return Separation(math.nan, math.nan, math.nan, n_pos, n_neg, unscored)
    names = sorted(set(g))
    gi = np.asarray([names.index(x) for x in g])
    wins = _wins(s[y], s[~y])
    rng = np.random.default_rng(seed)
    counts = np.zeros((resamples, len(names)))
    pick = rng.integers(0, len(names), size=(resamples, len(names)))
    np.add.at(counts, (np.arange(resamples)[:, None], pick), 1)
    wp, wn = counts[:, gi[y]], counts[:, gi[~y]]  # each text weighted by its group's count
    den = wp.sum(1) * wn.sum(1)
    ok = den > 0
    boot = np.einsum("bp,pn,bn->b", wp[ok], wins, wn[ok]) / den[ok]
    tail = (1 - level) / 2
    return Separation(float(wins.mean()), float(np.quantile(boot, tail)),
                      float(np.quantile(boot, 1 - tail)), n_pos, n_neg, unscored)


def cross_validated(features: Sequence[Sequence[float]], labels: Sequence[bool],
                    groups: Sequence[str], folds: int = 5, seed: int = 0) -> list[float]:
    """Out-of-fold probabilities of a logistic model of `features` (standardised), folds
    grouped by question so no question is in its own training fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = np.asarray(features, dtype=float), np.asarray(labels, dtype=bool)
    k = min(folds, len(set(groups)))
    out = np.full(len(y), np.nan)
    if k < 2:
        return [math.nan] * len(y)
    for train, test in GroupKFold(n_splits=k).split(x, y, groups):
        if y[train].all() or not y[train].any():
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(random_state=seed))
        model.fit(x[train], y[train])
        out[test] = model.predict_proba(x[test])[:, 1]
    return [float(v) for v in out]


def probe_aurocs(x: np.ndarray, labels: Sequence[bool], groups: Sequence[str], splits: int = 20,
                 test_size: float = 0.3, seed: int = 0) -> list[float]:
    """A logistic probe's test AUROC on each of `splits` random splits grouped by question
    (`x`: `[n, d]`); splits whose test part holds one class only are skipped."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupShuffleSplit
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(labels, dtype=bool)
    out = []
    split = GroupShuffleSplit(n_splits=splits, test_size=test_size, random_state=seed)
    for train, test in split.split(x, y, groups):
        if y[train].all() or not y[train].any() or y[test].all() or not y[test].any():
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        model.fit(x[train], y[train])
        out.append(auroc(model.decision_function(x[test]).tolist(), y[test].tolist()))
    return out
