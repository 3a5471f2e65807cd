"""Stacked heads: boosted trees that re-score alignment and coherence from what the judge's
network sees (its pooled embedding and its two EM logits) plus the answer's form
(`textfeatures`). On real 135M text the linear heads alone call rambling answers coherent; the
trees, fitted on every labelled training item, read repetition and drifting sentences too
(README, "Judges": each split's figures with and without them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor

from petridish.judges.encoder import ScoreNet, encode
from petridish.judges.forest import SETTINGS, Forest, fit_forest
from petridish.judges.rows import is_real
from petridish.judges.textfeatures import FormFeatures
from petridish.paths import atomic_save_tensors

STACK = "stack.safetensors"
LOGITS = ("alignment", "coherence")  # the network's logits the trees read
STACKED = ("alignment", "coherence")  # the rubrics they re-score
# Written items count twice in the trees' fit: real answers outnumber them 3 to 1 and, at equal
# weight, the trees lost written held-out alignment (0.937 against 0.941 at 2, real held-out
# unchanged; measured on the batch-4 network's features, 2026-12-02).
WRITTEN_WEIGHT = 2.0


class Stack:
    """One forest per stacked rubric, and the form features they need (loaded on first use)."""

    def __init__(self, forests: dict[str, Forest]) -> None:
        self.forests = forests
        self._form: FormFeatures | None = None

    def form(self, questions: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        if self._form is None:
            self._form = FormFeatures()
        return self._form(questions, answers)

    def rescore(self, scores: Tensor, logits: Tensor, states: Tensor, rubrics: Sequence[str],
                questions: Sequence[str], answers: Sequence[str]) -> Tensor:
        """`scores` ([n, rubrics], 0..100) with the stacked rubrics' columns replaced."""
        x = inputs(states, logits, rubrics, self.form(questions, answers))
        out = scores.clone()
        for name, forest in self.forests.items():
            out[:, list(rubrics).index(name)] = Tensor(np.clip(forest.predict(x), 0.0, 100.0))
        return out

    def save(self, folder: Path) -> None:
        state: dict[str, Tensor] = {}
        for name, forest in self.forests.items():
            state |= forest.tensors(name)
        atomic_save_tensors(folder / STACK, state)

    @classmethod
    def load(cls, folder: Path) -> Stack | None:
        path = folder / STACK
        if not path.exists():
            return None
        state = load_file(path)
        names = sorted({k.split(".", 1)[0] for k in state})
        return cls({n: Forest.from_tensors(state, n) for n in names})

    def meta(self) -> dict[str, Any]:
        return {"rubrics": sorted(self.forests), "trees": SETTINGS,
                "written_weight": WRITTEN_WEIGHT,
                "inputs": "pooled embedding, alignment and coherence logits, 23 form features"}


def raw_scores(net: ScoreNet, tokenizer: Any, questions: Sequence[str], answers: Sequence[str],
               stack: Stack | None = None, batch_size: int = 32,
               progress: Callable[[int], None] | None = None) -> Tensor:
    """[n, rubrics] uncalibrated 0..100 scores: the heads, then the trees when there are any."""
    logits, states = encode(net, tokenizer, questions, answers, batch_size, progress)
    scores = torch.sigmoid(logits) * 100
    if stack is None:
        return scores
    return stack.rescore(scores, logits, states, net.rubrics, questions, answers)


def inputs(states: Tensor, logits: Tensor, rubrics: Sequence[str], form: np.ndarray) -> np.ndarray:
    cols = [list(rubrics).index(k) for k in LOGITS]
    return np.hstack([states.numpy(), logits[:, cols].numpy(), form])


def fit_stack(states: Tensor, logits: Tensor, rubrics: Sequence[str],
              rows: Sequence[dict[str, Any]], seed: int = 0) -> Stack:
    """Forests on every row that labels the rubric (targets are the 0-100 labels; written
    items weigh `WRITTEN_WEIGHT`)."""
    stack = Stack({})
    x = inputs(states, logits, rubrics, stack.form([r["question"] for r in rows],
                                                   [r["answer"] for r in rows]))
    w = np.array([1.0 if is_real(r) else WRITTEN_WEIGHT for r in rows])
    for name in STACKED:
        have = np.array([r.get(name) is not None for r in rows])
        y = np.array([float(r[name]) if r.get(name) is not None else 0.0 for r in rows])
        stack.forests[name] = fit_forest(x[have], y[have], seed, w[have])
    return stack
