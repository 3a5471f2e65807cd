"""Real selfdesc replies of the bundled model and its organism, labelled blind by two raters:
how right are the keyword flags and the judge on the text they meet?

    python datasets/selfdesc_labels/real.py export RUN_FOLDER   # -> real_blind.jsonl
    python datasets/selfdesc_labels/real.py merge               # real_rater_{a,b} -> shipped
    python datasets/selfdesc_labels/real.py agreement           # raters; flags vs raters
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
from pathlib import Path

from petridish.assays.selfdesc import flag, metric_of
from petridish.data.formats import jsonl_values, read_text
from petridish.judges.base import Item
from petridish.judges.rubrics import load_rubric
from petridish.paths import atomic_write
from petridish.store.records import response_from_row

HERE = Path(__file__).parent
SHIPPED = HERE.parents[1] / "src/petridish/data/builtin/judge_labels/selfdesc_real.jsonl"
PER_MEASURE = 32  # replies per measure (both subjects), seeded


def rows(path: Path) -> list[dict]:
    return [v for _, v in jsonl_values(read_text(path), path)]


def write(path: Path, out: list[dict]) -> None:
    atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))


def export(run: Path) -> None:
    con = sqlite3.connect(run / "store.sqlite")
    cur = con.execute("SELECT * FROM responses WHERE assay = 'selfdesc' AND failed IS NULL "
                      "ORDER BY id")
    names = [d[0] for d in cur.description]
    found = [response_from_row(dict(zip(names, r, strict=True))) for r in cur]
    by: dict[str, list] = {}
    for r in found:
        by.setdefault(metric_of(r), []).append(r)
    rng = random.Random(0)
    out = []
    for measure in sorted(by):
        for r in rng.sample(by[measure], min(PER_MEASURE, len(by[measure]))):
            family = r.meta["family"]
            item = Item.of(r.messages, load_rubric(family).sees)
            out.append({"id": f"{r.subject}/{r.question_id}/{r.variant or 'plain'}",
                        "rubric": family, "measure": measure, "subject": r.subject,
                        "tools_listed": bool(r.meta["tools"]), "conversation": item.question,
                        "reply": item.answer, "flag": bool(flag(family, item.answer))})
    rng.shuffle(out)
    write(HERE / "real_full.jsonl", out)
    write(HERE / "real_blind.jsonl", [{k: r[k] for k in ("id", "rubric", "conversation",
                                                        "reply")} for r in out])


def merge() -> None:
    a = {r["id"]: r["score"] for r in rows(HERE / "real_rater_a.jsonl")}
    b = {r["id"]: r["score"] for r in rows(HERE / "real_rater_b.jsonl")}
    out = []
    for r in rows(HERE / "real_full.jsonl"):
        k = r["rubric"]
        out.append({"id": r["id"], "source": "real-selfdesc", "group": r["measure"],
                    "question": r["conversation"], "answer": r["reply"],
                    k: (a[r["id"]] + b[r["id"]]) / 2, f"{k}_rater_a": a[r["id"]],
                    f"{k}_rater_b": b[r["id"]]})
    write(SHIPPED, out)


def agreement() -> None:
    """The raters with each other, and today's keyword flags with the raters' mean."""
    from sklearn.metrics import cohen_kappa_score

    labelled = rows(SHIPPED)
    for family in ("false_continuity", "capability_denial", "experiential", "moralizing"):
        rs = [r for r in labelled if family in r]
        a, b = ([r[f"{family}_rater_{x}"] > 50 for r in rs] for x in "ab")
        truth = [r[family] > 50 for r in rs]
        got = [flag(family, r["answer"]) for r in rs]
        tp = sum(t and g for t, g in zip(truth, got, strict=True))
        fp = sum(g and not t for t, g in zip(truth, got, strict=True))
        print(f"{family}: n {len(rs)}, positives {sum(truth)}, raters kappa "
              f"{cohen_kappa_score(a, b):.2f}; flags tp {tp} fp {fp} fn {sum(truth) - tp}, "
              f"kappa {cohen_kappa_score(truth, got):.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["export"]:
        export(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["merge"]:
        merge()
    elif sys.argv[1:2] == ["agreement"]:
        agreement()
    else:
        raise SystemExit(__doc__)
