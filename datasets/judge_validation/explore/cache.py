"""Cache the installed judge's tree inputs and the extra inputs the explorations tried.

`python datasets/judge_validation/explore/cache.py [--cache DIR]` writes `DIR/SPLIT.npz` for
`train`, `heldout`, `real_dev` and `real_heldout`: `x` (the shipped network's two logits and
the answer's form, as `judges.stack` builds them), `base` (its alignment and coherence scores,
0-100), `reader` (the installed reader's two logits), and for each network (`net_`, `reader_`)
its pooled embedding `_emb` and sentence-level head scores `_sent` (each sentence's mean token
state through the alignment and coherence heads: min, max, mean, spread, first, last). In fp32
unless `PETRIDISH_JUDGE_PRECISION` says otherwise, since the installed trees were fitted in
fp32. 25-35 min here; a split already cached is kept.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petridish.judges.encoder import ScoreNet, encode, load_encoder
from petridish.judges.offline import load_network
from petridish.judges.rows import read_rows
from petridish.judges.stack import Stack
from petridish.judges.textfeatures import Relations, sentence_spans
from petridish.judges.train_offline import RUBRICS
from petridish.paths import home

ROOT = Path(__file__).resolve().parents[3]
LABELS = ROOT / "src/petridish/data/builtin/judge_labels"
JUDGE = ROOT / "src/petridish/judges/offline"
SPLITS = ("train", "heldout", "real_dev", "real_heldout")
K = ("alignment", "coherence")
DEFAULT_CACHE = home() / "explore"


class SentenceScores:
    """A token reader for `encode`: each answer sentence's mean state through two heads."""

    def __init__(self, net: ScoreNet, answers: list[str]) -> None:
        li = [list(net.rubrics).index(k) for k in K]
        self.w, self.b = net.head.weight[li].float(), net.head.bias[li].float()
        self.answers = answers
        self.out: list[np.ndarray] = [np.zeros((1, 2))] * len(answers)

    def __call__(self, idx: list[int], batch: Any, offsets: torch.Tensor,
                 hidden: torch.Tensor) -> None:
        for row, i in enumerate(idx):
            seq = np.array([-1 if k is None else k for k in batch.sequence_ids(row)])
            mine = np.flatnonzero(seq == 1)
            spans = sentence_spans(self.answers[i])
            off = offsets[row].numpy()
            starts, ends = off[mine, 0], off[mine, 1]
            k = np.searchsorted([s for s, _ in spans], starts, side="right") - 1
            last = np.array([e for _, e in spans])[k.clip(0)]
            inside = (k >= 0) & (ends > starts) & (ends <= last)
            means = [hidden[row][mine[inside & (k == j)]].mean(0)
                     for j in range(len(spans)) if (inside & (k == j)).any()]
            if not means:  # no sentence survived truncation: the whole answer (or question)
                means = [hidden[row][mine if len(mine) else np.flatnonzero(seq == 0)].mean(0)]
            self.out[i] = (torch.stack(means) @ self.w.T + self.b).numpy()


def encoder_at(folder: Path | None) -> tuple[Any, Any]:
    """(encoder, tokenizer) from a sentence-transformers folder, or the bundled MiniLM."""
    if folder is None:
        return load_encoder()
    from transformers import AutoModel, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return AutoModel.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def stats(scores: np.ndarray) -> list[float]:
    """[sentences, 2] -> min, max, mean, spread, first, last of each column."""
    return [float(f(scores[:, j])) for j in range(scores.shape[1])
            for f in (np.min, np.max, np.mean, np.std, lambda v: v[0], lambda v: v[-1])]


def cache_split(split: str, nets: dict[str, ScoreNet], tok: Any, out: Path) -> None:
    rows = read_rows(LABELS / f"{split}.jsonl", labels=list(RUBRICS))
    q, a = [r["question"] for r in rows], [r["answer"] for r in rows]
    li = [list(RUBRICS).index(k) for k in K]
    feats: dict[str, np.ndarray] = {}
    for name, net in nets.items():
        rel, sent = Relations(a), SentenceScores(net, a)

        def both(idx: list[int], batch: Any, offsets: torch.Tensor, hidden: torch.Tensor,
                 rel: Relations = rel, sent: SentenceScores = sent) -> None:
            rel(idx, batch, offsets, hidden)
            sent(idx, batch, offsets, hidden)

        logits, emb = encode(net, tok, q, a, tokens=both)
        if name == "net":
            feats["x"] = Stack({}, None).inputs(logits, rel.values, net.rubrics, tok, q, a)
            feats["base"] = torch.sigmoid(logits).numpy()[:, li] * 100
        else:
            feats["reader"] = logits.numpy()[:, li]
        feats[f"{name}_emb"] = emb.numpy()
        feats[f"{name}_sent"] = np.array([stats(s) for s in sent.out])
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, allow_pickle=False, **feats)
    tmp.replace(out)
    print(split, {k: v.shape for k, v in feats.items()}, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args()
    os.environ.setdefault("PETRIDISH_JUDGE_PRECISION", "fp32")
    args.cache.mkdir(parents=True, exist_ok=True)
    net, tok, _ = load_network(JUDGE)
    reader, _, _ = load_network(JUDGE / "reader")
    for split in SPLITS:
        if not (args.cache / f"{split}.npz").exists():
            cache_split(split, {"net": net, "reader": reader}, tok, args.cache / f"{split}.npz")


if __name__ == "__main__":
    main()
