"""Measure the shipped judge (and each sub-judge) at this machine's encoder precision on every
labels file its meta holds fp32 figures for, and store them beside those: a bf16 judge has its
own id, so its caption must show figures measured in bf16 (`judges.offline.shipped_validations`
picks the ones of the precision in use).

`PETRIDISH_JUDGE_PRECISION=bf16 python datasets/judge_validation/ship_precision.py`
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from petridish.judges.base import Item
from petridish.judges.encoder import precision
from petridish.judges.offline import FOLDER, META, OfflineJudge, single_id, sub_judges
from petridish.judges.rows import read_rows
from petridish.judges.rubrics import load_rubric
from petridish.judges.validate import validation_of
from petridish.paths import atomic_write

LABELS = Path(__file__).resolve().parents[2] / "src/petridish/data/builtin/judge_labels"


def measure(folder: Path, here: str) -> None:
    meta = json.loads((folder / META).read_text())
    old = meta.get("validations") or [meta["validation"]]
    kept = [v for v in old if v.get("precision", "fp32") != here]
    judge = OfflineJudge.load(folder)
    new = []
    for v in (v for v in old if v.get("precision", "fp32") == "fp32"):
        path = LABELS / v["labels"]
        rows = read_rows(path, labels=list(meta["rubrics"]))
        rubrics = [load_rubric(k) for k in meta["rubrics"] if any(r.get(k) is not None
                                                                  for r in rows)]
        got = judge.judge([Item(r["question"], r["answer"]) for r in rows], rubrics)
        scores = [{r.name: got[r.name][i].score for r in rubrics} for i in range(len(rows))]
        group = "group" if any("group" in r for r in rows) else None
        new.append(asdict(validation_of(single_id(folder), path, rows, rubrics, scores,
                                        group_by=group)) | {"labels": path.name,
                                                            "precision": here})
        print(f"{folder.name}: {path.name} at {here}")
    meta["validations"] = kept + new
    atomic_write(folder / META, json.dumps(meta, indent=2))


if __name__ == "__main__":
    if precision() == "fp32":
        raise SystemExit("the fp32 figures are the ones retrain wrote; nothing to add")
    for f in [FOLDER, *sub_judges(FOLDER)]:
        measure(f, precision())
