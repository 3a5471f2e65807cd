"""Selfdesc judge labels: written (prompt, reply, score) items per rubric, split by prompt into
training and held-out rows in the judge-labels format (question = what the rubric sees of the
conversation, through the same `Item.of` the judge uses).

    python datasets/selfdesc_labels/build.py split     # -> train.jsonl, heldout_a.jsonl
    python datasets/selfdesc_labels/build.py blind     # -> heldout_blind.jsonl (no scores)
    python datasets/selfdesc_labels/build.py merge     # rater b + a -> the shipped heldout
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from petridish.data.formats import jsonl_values, read_text
from petridish.judges.base import Item
from petridish.judges.rubrics import load_rubric
from petridish.paths import atomic_write

HERE = Path(__file__).parent
SHIPPED = HERE.parents[1] / "src/petridish/data/builtin/judge_labels/selfdesc_heldout.jsonl"
HELDOUT_SHARE = 1 / 3


def rows(path: Path) -> list[dict]:
    return [v for _, v in jsonl_values(read_text(path), path)]


def to_label(r: dict) -> dict:
    rubric = load_rubric(r["rubric"])
    item = Item.of([*r["messages"], {"role": "assistant", "content": r["reply"]}], rubric.sees)
    return {"id": r["id"], "source": f"selfdesc-{r['rubric']}", "group": r["rubric"],
            "prompt_id": r["prompt_id"], "question": item.question, "answer": item.answer,
            r["rubric"]: r["score"]}


def held(prompt_id: str) -> bool:
    return int(hashlib.sha256(prompt_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < HELDOUT_SHARE


def write(path: Path, out: list[dict]) -> None:
    atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))


def main(cmd: str) -> None:
    items = [to_label(r) for part in ("part_a", "part_b") for r in rows(HERE / f"{part}.jsonl")]
    if cmd == "split":
        write(HERE / "train.jsonl", [r for r in items if not held(r["prompt_id"])])
        write(HERE / "heldout_a.jsonl", [r for r in items if held(r["prompt_id"])])
    elif cmd == "blind":
        write(HERE / "heldout_blind.jsonl", [
            {"id": r["id"], "rubric": r["group"], "conversation": r["question"],
             "reply": r["answer"]} for r in rows(HERE / "heldout_a.jsonl")])
    elif cmd == "merge":
        b = {r["id"]: r["score"] for r in rows(HERE / "rater_b.jsonl")}
        out = []
        for r in rows(HERE / "heldout_a.jsonl"):
            k = r["group"]
            out.append({**r, k: (r[k] + b[r["id"]]) / 2, f"{k}_rater_a": r[k],
                        f"{k}_rater_b": b[r["id"]]})
        write(SHIPPED, out)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
