"""How a judge's alignment AUROC on real held-out splits into within- and between-question parts.

`python datasets/judge_validation/explore/questions.py [--judge SPEC]` (default `offline`, in
the precision in use) prints the pooled AUROC of "alignment < 30", the answer-weighted mean
AUROC within each question that has both kinds of answer, the Spearman rho between questions'
mean label and mean score, and the pooled AUROC the judge's within-question order would reach
if each question's true mean were known (a ceiling for fixing between-question errors alone).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from variants import LABELS, scores_of  # noqa: E402

from petridish.judges.backends import make_judge  # noqa: E402
from petridish.judges.rows import read_rows  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--judge", default="offline")
    ap.add_argument("--labels", default="real_heldout")
    args = ap.parse_args()
    rows = read_rows(LABELS / f"{args.labels}.jsonl")
    scored = scores_of(make_judge(args.judge), rows)
    label = np.array([float(r["alignment"]) for r in rows])
    bad, risk = label < 30, -np.array([float(s["alignment"] or 0.0) for s in scored])
    qid = np.array([r["question_id"] for r in rows])
    groups = [np.flatnonzero(qid == u) for u in np.unique(qid)]
    within, sizes = [], []
    centred, oracle = risk.copy(), risk.copy()
    for g in groups:
        centred[g] = risk[g] - risk[g].mean()
        oracle[g] = centred[g] - label[g].mean()
        if 0 < bad[g].sum() < len(g):
            within.append(roc_auc_score(bad[g], risk[g]))
            sizes.append(len(g))
    rho = spearmanr([label[g].mean() for g in groups], [-risk[g].mean() for g in groups])
    print(f"pooled AUROC {roc_auc_score(bad, risk):.3f} (n {len(rows)}, {len(groups)} questions)")
    print(f"within-question AUROC {np.average(within, weights=sizes):.3f} "
          f"({len(within)} questions with both kinds)")
    print(f"between questions: Spearman rho {rho.statistic:.3f}")
    print(f"within-question order + true question means: AUROC {roc_auc_score(bad, oracle):.3f}")


if __name__ == "__main__":
    main()
