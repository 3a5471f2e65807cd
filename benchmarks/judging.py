"""Offline judge throughput: judgments/s for the six rubrics vs the sentence embedding alone.

Baseline: sentence-transformers' `SentenceTransformer.encode` of the bundled MiniLM on the same
texts (question and answer joined), batch 32, the way a researcher embeds text for a linear
probe. petridish: `OfflineJudge.judge` on the same (question, answer) pairs, all six rubrics,
which is one encoder pass plus a 6-way head per pair, and, for a judge with stacked trees
(`judges/stack.py`), the reader network's pass over the pairs when it has one, the sentence
relations read from the network's token states, and the trees, its encoder in the precision
it runs at here (bf16 where the CPU has it natively, `judges.encoder.precision`), and the same
judge with its encoder in fp32 as a second row. The baseline is fp32; all on 2 threads, on 512
pairs drawn from the held-out labels (answers of 20-200 tokens). The sides alternate each
round and the best round per side counts (the machine is shared and noisy). `--large` adds the
`offline-large` judge (a LoRA of all-mpnet-base-v2) to the same rounds, with its ratio to the
shipped judge.

Run: `.venv/bin/python benchmarks/judging.py [--rounds N] [--n N] [--judge DIR] [--large]`
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from petridish.judges.backends import make_judge
from petridish.judges.base import Item
from petridish.judges.encoder import PRECISION_ENV, encoder_path, precision
from petridish.judges.offline import OfflineJudge
from petridish.judges.rubrics import load_rubrics

LABELS = Path(__file__).resolve().parents[1] / "src/petridish/data/builtin/judge_labels"
RUBRICS = "alignment,coherence,bad_stuff,medical,finance,gender"


def pairs(n: int) -> list[Item]:
    rows = [json.loads(x) for x in (LABELS / "heldout.jsonl").read_text().splitlines()]
    rows += [json.loads(x) for x in (LABELS / "train.jsonl").read_text().splitlines()]
    return [Item(r["question"], r["answer"]) for r in rows[:n]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--judge", type=Path, default=None, help="a judge folder (default shipped)")
    ap.add_argument("--large", action="store_true", help="also time the offline-large judge")
    args = ap.parse_args()
    torch.set_num_threads(2)
    from sentence_transformers import SentenceTransformer

    items = pairs(args.n)
    texts = [f"{it.question} {it.answer}" for it in items]
    st = SentenceTransformer(str(encoder_path()), device="cpu")
    judge = OfflineJudge.load(args.judge)
    rubrics = load_rubrics(RUBRICS)
    st.encode(texts[:32], batch_size=32)
    judge.judge(items[:32], rubrics)
    large = make_judge("offline-large") if args.large else None
    if large is not None:
        large.judge(items[:32], rubrics)
    here = precision()
    base, ours, fp32, big = [], [], [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        st.encode(texts, batch_size=32)
        base.append(time.perf_counter() - t)
        t = time.perf_counter()
        judge.judge(items, rubrics)
        ours.append(time.perf_counter() - t)
        if here != "fp32":
            asked = os.environ.get(PRECISION_ENV)
            os.environ[PRECISION_ENV] = "fp32"
            t = time.perf_counter()
            judge.judge(items, rubrics)
            fp32.append(time.perf_counter() - t)
            os.environ.pop(PRECISION_ENV)
            if asked is not None:
                os.environ[PRECISION_ENV] = asked
        if large is not None:
            t = time.perf_counter()
            large.judge(items, rubrics)
            big.append(time.perf_counter() - t)
    n = len(items)
    emb = n / min(base)
    pairs_s = n / min(ours)
    print(f"judge: {judge.id}")
    print(f"pairs: {n}, rounds: {args.rounds}, threads: {torch.get_num_threads()}")
    print(f"{'baseline  sentence-transformers encode:':<44}{emb:7.1f} texts/s")
    print(f"{f'petridish offline judge, 6 rubrics, {here}:':<44}{pairs_s:7.1f} pairs/s = "
          f"{6 * pairs_s:7.1f} judgments/s (goal ≥ 200)")
    if fp32:
        slow = n / min(fp32)
        print(f"{'the same judge, encoder in fp32:':<44}{slow:7.1f} pairs/s = "
              f"{6 * slow:7.1f} judgments/s; {here} / fp32: {pairs_s / slow:.2f}")
    if big:
        slow = n / min(big)
        print(f"{f'offline-large judge, 6 rubrics, {here}:':<44}{slow:7.1f} pairs/s = "
              f"{6 * slow:7.1f} judgments/s; offline-large / offline: {slow / pairs_s:.2f}")
    print(f"ratio pairs/s vs embedding alone: {pairs_s / emb:.2f}")


if __name__ == "__main__":
    main()
