"""Intervals that respect the design: answers to one question are correlated, so rates get a
bootstrap over questions (clusters), and two conditions sampled on the same questions and
seeds are compared by their paired difference (RESEARCH.md §6b)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
Cluster = tuple[int, int]  # (hits, scored rows) of one question


def _ratio(hits: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / n


def cluster_interval(clusters: Sequence[Cluster], seed: int = 0, resamples: int = RESAMPLES,
                     level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of Σhits / Σn with questions resampled with replacement.

    When every resample gives the same rate (no hit at all, or only hits), the percentile
    interval collapses to a point; it is then Wilson's interval with one observation per
    question (as if the answers to a question were one answer: conservative, never [0, 0])."""
    c = np.asarray(clusters, dtype=float).reshape(-1, 2)
    c = c[c[:, 1] > 0]
    if c.shape[0] == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, c.shape[0], size=(resamples, c.shape[0]))
    values = _ratio(c[pick, 0].sum(1), c[pick, 1].sum(1))
    values = values[np.isfinite(values)]
    tail = (1 - level) / 2
    low, high = float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))
    if high - low < 1e-12:
        from petridish.judges.metrics import wilson

        share = float(c[:, 0].sum() / c[:, 1].sum())
        return wilson(round(share * c.shape[0]), c.shape[0])
    return low, high


@dataclass(frozen=True)
class Difference:
    """rate(A) − rate(B) with its interval; `paired` says how it was computed."""

    value: float
    low: float
    high: float
    p_value: float | None
    paired: bool
    questions: int
    n_a: int
    n_b: int
    resamples: int


def paired_difference(a: Sequence[Cluster], b: Sequence[Cluster], seed: int = 0,
                      resamples: int = RESAMPLES, level: float = 0.95) -> Difference:
    """Questions i are shared: `a[i]` and `b[i]` are the same question under two conditions.
    Interval: the questions resampled together; p: a sign-flip permutation over questions
    (each question's two conditions swapped with probability 1/2)."""
    x, y = np.asarray(a, dtype=float).reshape(-1, 2), np.asarray(b, dtype=float).reshape(-1, 2)
    if x.shape != y.shape:
        raise ValueError("paired clusters must be aligned")
    diff = float(_ratio(x[:, 0].sum(), x[:, 1].sum()) - _ratio(y[:, 0].sum(), y[:, 1].sum()))
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, x.shape[0], size=(resamples, x.shape[0]))
    boot = (_ratio(x[pick, 0].sum(1), x[pick, 1].sum(1))
            - _ratio(y[pick, 0].sum(1), y[pick, 1].sum(1)))
    boot = boot[np.isfinite(boot)]
    flip = rng.random((resamples, x.shape[0])) < 0.5
    xa = np.where(flip[..., None], y[None], x[None])
    ya = np.where(flip[..., None], x[None], y[None])
    perm = _ratio(xa[..., 0].sum(1), xa[..., 1].sum(1)) - _ratio(ya[..., 0].sum(1),
                                                                   ya[..., 1].sum(1))
    perm = perm[np.isfinite(perm)]
    p = float((1 + np.sum(np.abs(perm) >= abs(diff) - 1e-12)) / (1 + perm.size))
    tail = (1 - level) / 2
    return Difference(diff, float(np.quantile(boot, tail)), float(np.quantile(boot, 1 - tail)),
                      p, True, x.shape[0], int(x[:, 1].sum()), int(y[:, 1].sum()), resamples)


def unpaired_difference(a: Sequence[Cluster], b: Sequence[Cluster], seed: int = 0,
                        resamples: int = RESAMPLES, level: float = 0.95) -> Difference:
    """Conditions on different questions or seeds: each resampled over its own questions."""
    x, y = np.asarray(a, dtype=float).reshape(-1, 2), np.asarray(b, dtype=float).reshape(-1, 2)
    diff = float(_ratio(x[:, 0].sum(), x[:, 1].sum()) - _ratio(y[:, 0].sum(), y[:, 1].sum()))
    rng = np.random.default_rng(seed)
    px = rng.integers(0, x.shape[0], size=(resamples, x.shape[0]))
    py = rng.integers(0, y.shape[0], size=(resamples, y.shape[0]))
    boot = (_ratio(x[px, 0].sum(1), x[px, 1].sum(1)) - _ratio(y[py, 0].sum(1), y[py, 1].sum(1)))
    boot = boot[np.isfinite(boot)]
    tail = (1 - level) / 2
    return Difference(diff, float(np.quantile(boot, tail)), float(np.quantile(boot, 1 - tail)),
                      None, False, x.shape[0] + y.shape[0], int(x[:, 1].sum()),
                      int(y[:, 1].sum()), resamples)
