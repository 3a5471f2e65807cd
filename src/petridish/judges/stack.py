"""Stacked heads: boosted trees that correct the network's alignment and coherence scores from
its two EM logits, the answer's form (`textfeatures`, read from the network's own token
states) and, when the judge has one, a *reader*: a second network trained mostly on real
answers, whose two logits the trees also read.

The trees fit the residual (label minus the network's score), so where they have nothing to
add the network's score stands. That keeps a network that orders clean written answers well
(the shipped one) as the base and lets the trees and the reader bring in what real 135M text
needs: rambling that sounds fluent, drift, repetition (README, "Judges": every split's figures
with and without them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

from petridish.errors import PetridishError
from petridish.judges.encoder import ScoreNet, encode
from petridish.judges.forest import SETTINGS, Forest, fit_forest
from petridish.judges.rows import is_real
from petridish.judges.textfeatures import Relations, form
from petridish.paths import atomic_save_tensors

STACK = "stack.safetensors"
READER = "reader"  # the reader network's folder inside the judge's (weights + meta)
LOGITS = ("alignment", "coherence")  # the logits the trees read, from each network
STACKED = ("alignment", "coherence")  # the rubrics they re-score
FORMAT = "residual-v2"  # inputs: logits, form (relations from the network's states), reader
# logits; target: label minus the network's score
# Written items count four times in the trees' fit: real answers outnumber them 5 to 1 and, at
# weight 2, the trees lost written held-out alignment (0.943 against 0.946 at 4; 300 trees at
# rate 0.05 on the shipped network with the batch-6 reader; real dev alignment 0.899 / 0.898;
# measured on cached features, 2026-12-02).
WRITTEN_WEIGHT = 4.0


class Stack:
    """One forest per stacked rubric, and the reader they need (if any)."""

    def __init__(self, forests: dict[str, Forest], reader: ScoreNet | None = None) -> None:
        self.forests = forests
        self.reader = reader

    def inputs(self, logits: Tensor, relations: np.ndarray, rubrics: Sequence[str],
               tokenizer: Any, questions: Sequence[str], answers: Sequence[str],
               batch_size: int = 32, progress: Callable[[int], None] | None = None
               ) -> np.ndarray:
        """[n, features]: the network's two logits, the form, then the reader's two logits."""
        read = None
        if self.reader is not None:
            read, _ = encode(self.reader, tokenizer, questions, answers, batch_size, progress)
        return inputs(logits, rubrics, form(answers, tokenizer, relations), read,
                      None if self.reader is None else self.reader.rubrics)

    def rescore(self, scores: Tensor, x: np.ndarray, rubrics: Sequence[str]) -> Tensor:
        """`scores` ([n, rubrics], 0..100) with the stacked rubrics' columns corrected."""
        out = scores.clone()
        for name, forest in self.forests.items():
            k = list(rubrics).index(name)
            out[:, k] = Tensor(np.clip(scores[:, k].numpy() + forest.predict(x), 0.0, 100.0))
        return out

    def save(self, folder: Path) -> None:
        state: dict[str, Tensor] = {}
        for name, forest in self.forests.items():
            state |= forest.tensors(name)
        atomic_save_tensors(folder / STACK, state,
                            {"format": FORMAT, "reader": json.dumps(self.reader is not None)})

    @classmethod
    def load(cls, folder: Path, load_reader: Callable[[Path], ScoreNet]) -> Stack | None:
        path = folder / STACK
        if not path.exists():
            return None
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise PetridishError("these stacked trees were fitted by an older petridish; "
                                 "refit them with `petridish judge retrain --network DIR "
                                 "--stack`", file=path)
        reader = load_reader(folder / READER) if json.loads(meta["reader"]) else None
        state = load_file(path)
        names = sorted({k.split(".", 1)[0] for k in state})
        return cls({n: Forest.from_tensors(state, n) for n in names}, reader)

    def meta(self) -> dict[str, Any]:
        return {"rubrics": sorted(self.forests), "trees": SETTINGS,
                "written_weight": WRITTEN_WEIGHT, "format": FORMAT,
                "target": "label minus the network's score",
                "inputs": "alignment and coherence logits, 23 form features (8 from the "
                          "network's token states)"
                          + (", the reader's alignment and coherence logits"
                             if self.reader is not None else "")}


def raw_scores(net: ScoreNet, tokenizer: Any, questions: Sequence[str], answers: Sequence[str],
               stack: Stack | None = None, batch_size: int = 32,
               progress: Callable[[int], None] | None = None) -> Tensor:
    """[n, rubrics] uncalibrated 0..100 scores: the heads, then the trees when there are any."""
    rel = Relations(answers) if stack is not None else None
    tick = None if progress is None else Passes(progress, 2 if stack and stack.reader else 1)
    logits, _ = encode(net, tokenizer, questions, answers, batch_size, tick, rel)
    scores = torch.sigmoid(logits) * 100
    if stack is None or rel is None:
        return scores
    x = stack.inputs(logits, rel.values, net.rubrics, tokenizer, questions, answers, batch_size,
                     tick)
    return stack.rescore(scores, x, net.rubrics)


class Passes:
    """`k` encoder passes over the same items reported as one count of them (each item counts
    1/k per pass), so a judge with a reader's pass shows one bar that ends when both do."""

    def __init__(self, progress: Callable[[int], None], k: int) -> None:
        self.progress, self.k, self.seen, self.told = progress, k, 0, 0

    def __call__(self, n: int) -> None:
        self.seen += n
        now = self.seen // self.k
        if now > self.told:
            self.progress(now - self.told)
            self.told = now


def inputs(logits: Tensor, rubrics: Sequence[str], form: np.ndarray,
           reader_logits: Tensor | None = None,
           reader_rubrics: Sequence[str] | None = None) -> np.ndarray:
    parts = [logits[:, [list(rubrics).index(k) for k in LOGITS]].numpy(), form]
    if reader_logits is not None and reader_rubrics is not None:
        parts.append(reader_logits[:, [list(reader_rubrics).index(k) for k in LOGITS]].numpy())
    return np.hstack(parts)


def fit_stack(net: ScoreNet, tokenizer: Any, rows: Sequence[dict[str, Any]],
              reader: ScoreNet | None = None, seed: int = 0) -> Stack:
    """Forests on every row that labels the rubric, fitted to the label minus the network's
    score (written items weigh `WRITTEN_WEIGHT`)."""
    stack = Stack({}, reader)
    questions, answers = [r["question"] for r in rows], [r["answer"] for r in rows]
    rel = Relations(answers)
    logits, _ = encode(net, tokenizer, questions, answers, tokens=rel)
    x = stack.inputs(logits, rel.values, net.rubrics, tokenizer, questions, answers)
    base = torch.sigmoid(logits).numpy() * 100
    stack.forests = fit_residuals(x, {k: base[:, list(net.rubrics).index(k)] for k in STACKED},
                                  rows, seed)
    return stack


def fit_residuals(x: np.ndarray, base: dict[str, np.ndarray], rows: Sequence[dict[str, Any]],
                  seed: int = 0) -> dict[str, Forest]:
    """One forest per rubric in `base`, fitted to label minus `base` on the rows that label it."""
    w = np.array([1.0 if is_real(r) else WRITTEN_WEIGHT for r in rows])
    forests = {}
    for name, scores in base.items():
        have = np.array([r.get(name) is not None for r in rows])
        y = np.array([float(r[name]) if r.get(name) is not None else 0.0 for r in rows])
        forests[name] = fit_forest(x[have], (y - scores)[have], seed, w[have])
    return forests
