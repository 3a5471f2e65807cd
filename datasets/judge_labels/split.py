"""Merge the hand-labelled source files into the offline judge's train and held-out files.

The written items are split by question (a hash of its text), so no held-out written question
is seen in training; the split is stable: adding items never moves an old one across. Real
answers are placed by sample: the demo's answers are held out, other samples train.
Run from the repo root: `python datasets/judge_labels/split.py`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

HERE = Path(__file__).parent
OUT = HERE.parents[1] / "src" / "petridish" / "data" / "builtin" / "judge_labels"
SOURCES = ["general", "medical", "finance", "everyday", "real_smollm2", "real_smollm2_more",
           "real_smollm2_third", "real_organisms"]
# The demo's own answers (seed 0) are held out whole, so the demo is judged out of sample and
# the held-out split has real model text; other real samples (seeds 11-14) train.
PLACED = {"real_smollm2": "heldout", "real_smollm2_more": "train", "real_smollm2_third": "train",
          "real_organisms": "train"}
# real_organisms (answers of the weak and strong organisms and steered base, labelled for
# alignment, coherence and bad_stuff only): the topic rubrics are null there, which the
# retrain loss masks.
PARTIAL = {"real_organisms": ["alignment", "coherence", "bad_stuff"]}
RUBRICS = ["alignment", "coherence", "bad_stuff", "medical", "finance", "gender"]
HELDOUT_SHARE = 0.2
# Pool batches labelled and tried but not taken into `builtin:train`: trees fitted with batch 7
# scored real dev lower (coherence AUROC 0.743 vs 0.767, EM F1 0.34 vs 0.37; README). Its
# answers stay in real_organisms.jsonl; `train_with_batch7.jsonl` here (train + them) rebuilds
# that variant with
# `petridish judge retrain --labels datasets/judge_labels/train_with_batch7.jsonl`.
TRIED = {"batch7"}


def heldout(question: str) -> bool:
    h = int(hashlib.sha256(("heldout:" + question.strip().lower()).encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < HELDOUT_SHARE


def count(items: list[dict[str, object]], k: str, below: bool) -> int:
    return sum(r[k] is not None and (int(r[k]) < 30 if below else int(r[k]) > 50)  # type: ignore[call-overload]
               for r in items)


def main() -> None:
    rows = []
    for name in SOURCES:
        path = HERE / f"{name}.jsonl"
        if not path.exists():
            print(f"skip {path.name} (missing)")
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                need = PARTIAL.get(name, RUBRICS)
                assert all(isinstance(row[k], int | float) and 0 <= row[k] <= 100
                           for k in need), row
                rows.append({"id": row["id"], "source": name, "kind": row.get("kind", ""),
                             "question": row["question"], "answer": row["answer"],
                             **{k: row.get(k) if k in need else None for k in RUBRICS}})
    answers = Counter(r["answer"].strip() for r in rows)
    dupes = [a for a, n in answers.items() if n > 1]
    assert not dupes, f"duplicate answers: {dupes[:3]}"
    OUT.mkdir(parents=True, exist_ok=True)
    parts: dict[str, list[dict[str, object]]] = {"train": [], "heldout": []}
    batch = {r["id"]: r["batch"] for r in map(json.loads, (HERE / "pool" / "sources.jsonl")
                                               .read_text(encoding="utf-8").splitlines())}
    tried = []
    for r in rows:
        if r["source"] == "real_organisms" and batch.get(str(r["id"])) in TRIED:
            tried.append(r)
            continue
        part = PLACED.get(str(r["source"]))
        parts[part or ("heldout" if heldout(str(r["question"])) else "train")].append(r)
    (HERE / "train_with_batch7.jsonl").write_text("".join(
        json.dumps(r, ensure_ascii=False) + "\n" for r in parts["train"] + tried), encoding="utf-8")
    for part, items in parts.items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items)
        (OUT / f"{part}.jsonl").write_text(text, encoding="utf-8")
        qs = len({r["question"] for r in items})
        print(f"{part}: {len(items)} items, {qs} questions, " + ", ".join(
            f"{k}<30:{count(items, k, True)}" if k == "alignment"
            else f"{k}>50:{count(items, k, False)}" for k in RUBRICS))


if __name__ == "__main__":
    main()
