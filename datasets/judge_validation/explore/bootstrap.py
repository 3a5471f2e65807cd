"""Paired bootstrap over real-dev questions: a tree variant's AUROC minus the installed trees'.

`python datasets/judge_validation/explore/bootstrap.py VARIANT ... [--cache DIR]` (variants as
in `trees.py`). Resamples real-dev questions with replacement 1,000 times, scoring both
variants on the same draw, and prints the observed difference with its 95 % interval. Answers
to one question are not independent, hence questions, not answers, are drawn.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from cache import DEFAULT_CACHE
from sklearn.metrics import roc_auc_score
from trees import Bench, K, run

TRUTH = {"alignment": lambda v: v < 30, "coherence": lambda v: v > 50}
SIGN = {"alignment": -1.0, "coherence": 1.0}  # AUROC of "low alignment", "high coherence"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variant", nargs="+")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--draws", type=int, default=1000)
    args = ap.parse_args()
    os.environ.setdefault("PETRIDISH_JUDGE_PRECISION", "fp32")
    bench = Bench(args.cache)
    dev = bench.rows["real_dev"]
    q = np.array([r["question_id"] for r in dev])
    members = [np.flatnonzero(q == u) for u in np.unique(q)]
    truth = {k: np.array([TRUTH[k](r[k]) for r in dev]) for k in K}
    base = run(bench, "installed")["real_dev"]
    for name in args.variant:
        got = run(bench, name)["real_dev"]
        rng = np.random.default_rng(0)
        for k in K:
            def diff(pick: np.ndarray, k: str = k, got: dict[str, np.ndarray] = got) -> float:
                t = truth[k][pick]
                return float(roc_auc_score(t, SIGN[k] * got[k][pick])
                             - roc_auc_score(t, SIGN[k] * base[k][pick]))

            draws = []
            for _ in range(args.draws):
                pick = np.concatenate([members[i] for i in rng.integers(len(members),
                                                                        size=len(members))])
                if 0 < truth[k][pick].sum() < len(pick):
                    draws.append(diff(pick))
            lo, hi = np.percentile(draws, [2.5, 97.5])
            print(f"{name} {k}: {diff(np.arange(len(dev))):+.3f} [{lo:+.3f}, {hi:+.3f}]",
                  flush=True)


if __name__ == "__main__":
    main()
