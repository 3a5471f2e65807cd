"""Out-of-fold reader logits for the trees: K readers, each trained on the other folds' questions.

`python datasets/judge_validation/explore/oof_readers.py [--folds 2] [--cache DIR]` trains
each reader as the installed one was (`--real-weight 6 --epochs 3`, `fit_network`) on the
training questions outside its fold and saves its logits on its own fold as `DIR/foldK.pt`;
`trees.py oof` then fits the trees on them. About 17 min a fold here (2 folds); a fold already
saved is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import torch
from cache import DEFAULT_CACHE, LABELS

from petridish.judges.encoder import encode
from petridish.judges.rows import read_rows
from petridish.judges.train_offline import RUBRICS, RetrainSettings, fit_network


def fold_of(question: str, folds: int) -> int:
    return int(hashlib.sha256(("oof:" + question).encode()).hexdigest()[:8], 16) % folds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args()
    os.environ.setdefault("PETRIDISH_JUDGE_PRECISION", "fp32")
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = read_rows(LABELS / "train.jsonl", labels=list(RUBRICS))
    dev = read_rows(LABELS / "real_dev.jsonl", labels=list(RUBRICS))
    fold = [fold_of(r["question"], args.folds) for r in rows]
    for k in range(args.folds):
        out = args.cache / f"fold{k}.pt"
        if out.exists():
            continue
        other = [r for r, g in zip(rows, fold, strict=True) if g != k]
        mine = [i for i, g in enumerate(fold) if g == k]
        net, tok, meta = fit_network(other, dev, RetrainSettings(epochs=3, real_weight=6,
                                                                 stack=True), print)
        logits, _ = encode(net, tok, [rows[i]["question"] for i in mine],
                           [rows[i]["answer"] for i in mine])
        tmp = out.with_suffix(".tmp")
        torch.save({"idx": mine, "logits": logits, "rubrics": list(net.rubrics), "meta": meta},
                   tmp)
        tmp.replace(out)
        print(f"fold {k}: trained on {len(other)}, read {len(mine)}", flush=True)


if __name__ == "__main__":
    main()
