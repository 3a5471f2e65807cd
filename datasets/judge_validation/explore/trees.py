"""The installed trees' recipe refitted on cached features with more (or other) inputs.

`python datasets/judge_validation/explore/trees.py [VARIANT ...] [--cache DIR]` after
`cache.py`. For each variant it refits the residual trees (`judges.stack.fit_residuals`, the
installed settings) on `builtin:train`, chooses the EM cut on real dev (`judges.operating`),
and prints AUROC / rho of alignment and coherence and EM precision / recall on every split.
Variants: `installed` (the same inputs: reproduces the installed judge in fp32), `reader_sent`,
`net_sent`, `both_sent` (sentence-level head scores), `knn_net`, `knn_reader` (nearest
labelled training answers), `oof` (out-of-fold reader logits from `oof_readers.py`) and
`reader=PT` (a network's state dict from `full_finetune.py` as the reader, `--encoder` naming
the encoder folder it was fine-tuned from if not MiniLM; its logits are cached beside PT) and
`alone=PT` (that network's own scores, no trees, with the EM cut chosen on real dev).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from cache import DEFAULT_CACHE, LABELS, SPLITS, encoder_at

from petridish.judges.decisions import em_decision
from petridish.judges.operating import Calibration, choose_cut
from petridish.judges.rows import read_rows
from petridish.judges.rubrics import load_rubric
from petridish.judges.stack import fit_residuals
from petridish.judges.train_offline import RUBRICS
from petridish.judges.validate import agreement

K = ("alignment", "coherence")
Feature = dict[str, np.ndarray]  # split -> [n, f]


class Bench:
    """Cached features and labels of every split."""

    def __init__(self, cache: Path) -> None:
        self.rows = {s: read_rows(LABELS / f"{s}.jsonl", labels=list(RUBRICS)) for s in SPLITS}
        self.f = {s: dict(np.load(cache / f"{s}.npz")) for s in SPLITS}
        self.cache = cache

    def key(self, name: str) -> Feature:
        return {s: self.f[s][name] for s in SPLITS}

    def knn(self, emb: str, k: int = 20) -> Feature:
        """Similarity-weighted mean labels of the k nearest training answers (cosine), and
        their mean similarity; a training answer never sees its own question's answers."""
        e = {s: self.f[s][emb] / np.linalg.norm(self.f[s][emb], axis=1, keepdims=True)
             for s in SPLITS}
        train = self.rows["train"]
        qid = np.array([hash(r["question"]) for r in train])
        y = {n: np.array([np.nan if r.get(n) is None else float(r[n]) for r in train]) for n in K}
        out = {}
        for s in SPLITS:
            sim = e[s] @ e["train"].T
            if s == "train":
                sim[qid[:, None] == qid[None, :]] = -9.0
            top = np.argpartition(-sim, k, axis=1)[:, :k]
            w = np.take_along_axis(sim, top, 1).clip(0)
            cols = []
            for n in K:
                yy = y[n][top]
                ok = ~np.isnan(yy)
                cols.append(np.where(ok, yy * w, 0).sum(1) / np.maximum((w * ok).sum(1), 1e-9))
            cols.append(np.take_along_axis(sim, top, 1).mean(1))
            out[s] = np.stack(cols, 1)
        return out

    def scores(self, extra: list[Feature], reader: Feature | None = None,
               train_reader: np.ndarray | None = None) -> dict[str, dict[str, np.ndarray]]:
        """split -> rubric -> 0-100 scores of trees fitted with these inputs."""
        rd = reader or self.key("reader")
        if train_reader is not None:
            rd = {**rd, "train": train_reader}
        x = {s: np.hstack([self.f[s]["x"], rd[s]] + [e[s] for e in extra]) for s in SPLITS}
        base = {s: {k: self.f[s]["base"][:, j] for j, k in enumerate(K)} for s in SPLITS}
        forests = fit_residuals(x["train"], base["train"], self.rows["train"])
        return {s: {k: np.clip(base[s][k] + forests[k].predict(x[s]), 0, 100) for k in K}
                for s in SPLITS[1:]}

    def report(self, name: str, scored: dict[str, dict[str, np.ndarray]]) -> str:
        as_rows = {s: [{k: float(v[k][i]) for k in K} for i in range(len(self.rows[s]))]
                   for s, v in scored.items()}
        cut, _ = choose_cut(self.rows["real_dev"], as_rows["real_dev"])
        cal = Calibration.from_cut(cut)
        line = [name, f"cut < {cut['alignment_below']:g}, > {cut['coherence_above']:g}"]
        for s, sc in as_rows.items():
            moved = [{k: cal.apply(k, [v])[0] for k, v in one.items()} for one in sc]
            cells = [f"{a.auroc:.3f} / {a.spearman:.3f}" for a in (
                agreement(load_rubric(k), [r.get(k) for r in self.rows[s]], [m[k] for m in moved])
                for k in K)]
            e = em_decision(self.rows[s], moved)
            p = "-" if e.precision is None else f"{e.precision:.2f}"
            r = "-" if e.recall is None else f"{e.recall:.2f}"
            line.append(f"{s}: {', '.join(cells)}, EM {p} / {r} ({e.tp} of {e.tp + e.fn})")
        return " | ".join(line)


def oof_reader(bench: Bench) -> np.ndarray:
    """Training rows' reader logits, each from the reader that did not train on its question."""
    r = bench.f["train"]["reader"].copy()
    for pt in sorted(bench.cache.glob("fold*.pt")):
        d = torch.load(pt)
        r[d["idx"]] = d["logits"].numpy()[:, [d["rubrics"].index(n) for n in K]]
    return r


def network_reader(bench: Bench, pt: Path, encoder_dir: Path | None = None) -> Feature:
    """Logits of a fully fine-tuned network (full_finetune.py's `epN.pt`, on `encoder_dir` or
    the bundled MiniLM) on every split."""
    out = pt.with_suffix(".reader.npz")
    if not out.exists():
        from petridish.judges.encoder import ScoreNet, encode

        encoder, tok = encoder_at(encoder_dir)
        net = ScoreNet(encoder, RUBRICS)
        net.load_state_dict(torch.load(pt))
        li = [list(RUBRICS).index(k) for k in K]
        got = {s: encode(net, tok, [r["question"] for r in bench.rows[s]],
                         [r["answer"] for r in bench.rows[s]])[0].numpy()[:, li] for s in SPLITS}
        np.savez(out, **got)
    return dict(np.load(out))


def variants(bench: Bench) -> dict[str, Callable[[], dict[str, dict[str, np.ndarray]]]]:
    b = bench
    return {
        "installed": lambda: b.scores([]),
        "reader_sent": lambda: b.scores([b.key("reader_sent")]),
        "net_sent": lambda: b.scores([b.key("net_sent")]),
        "both_sent": lambda: b.scores([b.key("net_sent"), b.key("reader_sent")]),
        "knn_net": lambda: b.scores([b.knn("net_emb")]),
        "knn_reader": lambda: b.scores([b.knn("reader_emb")]),
        "oof": lambda: b.scores([], train_reader=oof_reader(b)),
    }


def run(bench: Bench, name: str, encoder_dir: Path | None = None
        ) -> dict[str, dict[str, np.ndarray]]:
    if name.startswith(("reader=", "alone=")):
        got = network_reader(bench, Path(name.split("=", 1)[1]), encoder_dir)
        if name.startswith("alone="):  # the network's own scores, no trees
            return {s: {k: 100 / (1 + np.exp(-got[s][:, j])) for j, k in enumerate(K)}
                    for s in SPLITS[1:]}
        return bench.scores([], reader=got)
    return variants(bench)[name]()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variant", nargs="*", default=["installed"])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--encoder", type=Path, default=None,
                    help="the encoder folder a reader=PT network was fine-tuned from")
    args = ap.parse_args()
    os.environ.setdefault("PETRIDISH_JUDGE_PRECISION", "fp32")
    bench = Bench(args.cache)
    for name in args.variant:
        print(bench.report(name, run(bench, name, args.encoder)), flush=True)


if __name__ == "__main__":
    main()
