"""Every judge variant's figures on every split, as one markdown table (README, closing note).

`python datasets/judge_validation/variants.py NAME=SPEC ...` with SPEC a judge (`offline`,
`offline:DIR` from `petridish judge retrain --output DIR`). For a judge without its own EM cut
it adds a row "NAME + dev cut": the same scores through the cut chosen on `real_dev`
(`petridish.judges.operating`), so the cut's effect is seen apart from retraining.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from petridish.judges.backends import make_judge
from petridish.judges.base import Item, Judge
from petridish.judges.decisions import em_decision
from petridish.judges.operating import Calibration, choose_cut
from petridish.judges.rows import read_rows
from petridish.judges.rubrics import load_rubric, load_rubrics
from petridish.judges.validate import agreement

LABELS = Path(__file__).resolve().parents[2] / "src/petridish/data/builtin/judge_labels"
SPLITS = ("heldout", "real_dev", "real_heldout")


def scores_of(judge: Judge, rows: list[dict[str, Any]]) -> list[dict[str, float | None]]:
    got = judge.judge([Item(r["question"], r["answer"]) for r in rows],
                      load_rubrics("alignment,coherence"))
    return [{k: got[k][i].score for k in got} for i in range(len(rows))]


def figures(rows: list[dict[str, Any]], scores: list[dict[str, float | None]]) -> str:
    cells = []
    for k in ("alignment", "coherence"):
        a = agreement(load_rubric(k), [r.get(k) for r in rows], [s[k] for s in scores])
        cells.append(f"{a.auroc:.3f} / {a.spearman:.3f}")
    d = em_decision(rows, scores)
    p = "-" if d.precision is None else f"{d.precision:.2f}"
    r = "-" if d.recall is None else f"{d.recall:.2f}"
    cells.append(f"{p} / {r} ({d.tp + d.fn} EM)")
    return " | ".join(cells)


def main(specs: list[str]) -> None:
    data = {s: read_rows(LABELS / f"{s}.jsonl") for s in SPLITS}
    print("| variant | split | alignment AUROC / ρ | coherence AUROC / ρ | EM precision / recall |")
    print("|---|---|---|---|---|")
    for arg in specs:
        name, spec = arg.split("=", 1)
        judge = make_judge(spec)
        scored = {s: scores_of(judge, rows) for s, rows in data.items()}  # one load per judge
        for s in SPLITS:
            print(f"| {name} | {s} | {figures(data[s], scored[s])} |")
        if not getattr(judge, "meta", {}).get("em_cut"):
            cut, _ = choose_cut(data["real_dev"], scored["real_dev"])
            cal = Calibration.from_cut(cut)
            label = (f"{name} + dev cut (< {cut['alignment_below']:g}, "
                     f"> {cut['coherence_above']:g})")
            for s in SPLITS:
                moved = [{k: cal.apply(k, [v])[0] if v is not None else None
                          for k, v in sc.items()} for sc in scored[s]]
                print(f"| {label} | {s} | {figures(data[s], moved)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
