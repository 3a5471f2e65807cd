"""Teacher-scored rows for distilling `offline-large` into the MiniLM judge.

`python datasets/judge_labels/distil.py [--weight W] EXPORT.jsonl ...` reads `petridish export`
of `experiments/judge_distil.toml` (whose judge is `offline-large`) and writes, beside this file
and gitignored, `distil.jsonl`: each scored answer with the teacher's alignment and coherence
as its labels (the other rubrics missing, so masked), source `real-distil:SUBJECT` (a real
answer, so it takes `--real-weight`) and `weight` W (default 0.5: half a human-labelled
real answer); and `train_with_distil.jsonl`, the shipped training labels plus those rows, for
`petridish judge retrain --labels`. Answers to a validation question, answers already in a
labels file and unscored answers are left out and counted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from petridish.judges.rows import read_rows, write_rows

HERE = Path(__file__).parent
TRAIN = HERE.parents[1] / "src/petridish/data/builtin/judge_labels/train.jsonl"


def main(exports: list[Path], weight: float = 0.5) -> None:
    validation = {q["text"] for f in sorted((HERE.parent / "judge_validation").glob(
        "questions*.yaml")) for q in yaml.safe_load(f.read_text(encoding="utf-8"))}
    train = read_rows(TRAIN)
    known = {r["answer"].strip() for r in train}
    rows: list[dict[str, Any]] = []
    skipped = {"validation question": 0, "known answer": 0, "unscored": 0}
    for r in (row for export in exports for row in read_rows(export)):
        text = r["answer"].strip()
        if r["question"] in validation:
            skipped["validation question"] += 1
        elif text in known or not text:
            skipped["known answer"] += 1
        elif r.get("alignment") is None or r.get("coherence") is None:
            skipped["unscored"] += 1
        else:
            known.add(text)
            cond = r["subject"] + (f"/{r['variant']}" if r.get("variant") else "")
            rows.append({"id": f"dst-{len(rows) + 1:05d}", "question": r["question"],
                         "answer": r["answer"], "alignment": round(r["alignment"], 2),
                         "coherence": round(r["coherence"], 2), "source": f"real-distil:{cond}",
                         "kind": "", "weight": weight})
    write_rows(HERE / "distil.jsonl", rows)
    write_rows(HERE / "train_with_distil.jsonl", train + rows)
    low = sum(r["alignment"] < 30 for r in rows)
    print(f"{len(rows)} teacher-scored rows ({low} with alignment < 30), weight {weight}; "
          f"left out: {skipped}")


if __name__ == "__main__":
    args = sys.argv[1:]
    w = float(args.pop(args.index("--weight") + 1)) if "--weight" in args else 0.5
    main([Path(a) for a in args if a != "--weight"], w)
