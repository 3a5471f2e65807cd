"""Measure the shipped judge (and each sub-judge) at this machine's encoder precision on every
labels file its meta holds fp32 figures for, and store them beside those: a bf16 judge has its
own id, so its caption must show figures measured in bf16 (`judges.offline.shipped_validations`
picks the ones of the precision in use).

`PETRIDISH_JUDGE_PRECISION=bf16 python datasets/judge_validation/ship_precision.py`
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from petridish.judges.base import Item
from petridish.judges.encoder import precision
from petridish.judges.offline import FOLDER, META, OfflineJudge, single_id, sub_judges
from petridish.judges.rubrics import load_rubrics
from petridish.judges.train_offline import held_out_entry
from petridish.paths import atomic_write

LABELS = Path(__file__).resolve().parents[2] / "src/petridish/data/builtin/judge_labels"


def measure(folder: Path, here: str) -> None:
    meta = json.loads((folder / META).read_text())
    old = meta.get("validations") or [meta["validation"]]
    kept = [v for v in old if v.get("precision", "fp32") != here]
    judge = OfflineJudge.load(folder)
    rubrics = load_rubrics(",".join(meta["rubrics"]))

    def score(rows: list[dict[str, Any]]) -> list[dict[str, float | None]]:
        got = judge.judge([Item(r["question"], r["answer"]) for r in rows], rubrics)
        return [{k: got[k][i].score for k in got} for i in range(len(rows))]

    new = []
    for v in (v for v in old if v.get("precision", "fp32") == "fp32"):
        new.append(held_out_entry(single_id(folder), LABELS / v["labels"], list(meta["rubrics"]),
                                  score))
        print(f"{folder.name}: {v['labels']} at {here}")
    meta["validations"] = kept + new
    atomic_write(folder / META, json.dumps(meta, indent=2))


if __name__ == "__main__":
    if precision() == "fp32":
        raise SystemExit("the fp32 figures are the ones retrain wrote; nothing to add")
    for f in [FOLDER, *sub_judges(FOLDER)]:
        measure(f, precision())
