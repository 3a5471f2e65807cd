"""Two judge networks on real dev, paired: the AUROC difference and its question bootstrap.

`python datasets/judge_validation/explore/paired.py A B` scores `builtin:real_dev` with each
folder's network alone (LoRA merged, no trees, no calibration: AUROC needs only the order),
and prints B's alignment (< 30) and coherence (> 50) AUROC minus A's, with a 95 % interval
from 1,000 resamples of the questions (answers to one question move together).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from cache import LABELS
from sklearn.metrics import roc_auc_score

from petridish.judges.encoder import predict
from petridish.judges.offline import load_network
from petridish.judges.rows import read_rows


def main(a: Path, b: Path) -> None:
    torch.set_num_threads(2)
    rows = read_rows(LABELS / "real_dev.jsonl")
    q, ans = [r["question"] for r in rows], [r["answer"] for r in rows]
    scores = []
    for folder in (a, b):
        net, tok, _ = load_network(folder)
        scores.append(predict(net, tok, q, ans).numpy())
    ya = np.array([r["alignment"] < 30 for r in rows])
    yc = np.array([r["coherence"] > 50 for r in rows])
    qs = np.array([r["question_id"] for r in rows])

    def diff(idx: np.ndarray) -> tuple[float, float]:
        def gain(y: np.ndarray, col: int, sign: float) -> float:
            return float(roc_auc_score(y[idx], sign * scores[1][idx, col])
                         - roc_auc_score(y[idx], sign * scores[0][idx, col]))
        return gain(ya, 0, -1.0), gain(yc, 1, 1.0)  # columns: alignment, coherence

    point = diff(np.arange(len(rows)))
    rng, unique = np.random.default_rng(0), np.unique(qs)
    draws = []
    for _ in range(1000):
        idx = np.concatenate([np.where(qs == x)[0] for x in rng.choice(unique, len(unique))])
        if 0 < ya[idx].sum() < len(idx) and 0 < yc[idx].sum() < len(idx):
            draws.append(diff(idx))
    lo, hi = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
    for k, name in enumerate(("alignment", "coherence")):
        print(f"{name}: B - A {point[k]:+.3f} [{lo[k]:+.3f}, {hi[k]:+.3f}] (n {len(rows)}, "
              f"{len(unique)} questions)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
