"""Features of an answer's form that the stacked heads read beside the judge's logits.

The judge's encoder sees a (question, answer) pair at once; whether a small model's answer
holds together is also in how its sentences relate to each other and to the question. So:
15 surface statistics (length, repetition, word fragments, punctuation, person) and 8 sentence
relations (cosine of each sentence with the next and with the question, the answer with the
question, how spread the sentences are), read from the judge network's own token states of
the pair: each sentence is the mean of its tokens' states, so the relations cost no pass of
their own (a separate MiniLM pass over question, answer and sentences cost 2× the judge's
time and read coherence on real dev 0.01 AUROC better; README, Benchmarks).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from transformers import BatchEncoding, PreTrainedTokenizerBase

SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
WORD = re.compile(r"[A-Za-z']+")
RELATIONS = 8
WIDTH = 15 + RELATIONS  # surface + sentence features


def sentences(answer: str) -> list[str]:
    found = [s.strip() for s in SENTENCE_END.split(answer) if len(s.strip()) > 3]
    return found or [answer]


def sentence_spans(answer: str) -> list[tuple[int, int]]:
    """Each of `sentences(answer)` as a (start, end) character span of the answer."""
    out, at = [], 0
    for s in sentences(answer):
        i = answer.find(s, at)
        i = at if i < 0 else i
        out.append((i, i + len(s)))
        at = i + len(s)
    return out


def surface(answer: str, tokenizer: PreTrainedTokenizerBase) -> list[float]:
    words = WORD.findall(answer.lower())
    n = max(len(words), 1)

    def distinct(k: int) -> float:
        grams = [tuple(words[i:i + k]) for i in range(len(words) - k + 1)]
        return len(set(grams)) / len(grams) if grams else 1.0

    pieces = [len(tokenizer.tokenize(w)) for w in words] or [1]
    sents = sentences(answer)
    text = answer.strip()
    return [float(np.log1p(len(answer))), float(np.log1p(n)), distinct(1), distinct(2),
            distinct(3), float(np.mean([p > 1 for p in pieces])),
            float(np.mean([p > 2 for p in pieces])), sum(c in ",;:" for c in answer) / n,
            float(text[-1:] in ".!?)\"") if text else 0.0, float(np.log1p(len(sents))),
            float(np.mean([len(s.split()) for s in sents])),
            sum(c.isdigit() for c in answer) / max(len(answer), 1), answer.count("\n") / n,
            len(re.findall(r"\b(I|me|my)\b", answer)) / n,
            len(re.findall(r"\byou\b", answer.lower())) / n]


class Relations:
    """Collects the sentence relations of every pair while the judge's network encodes them
    (pass it as `encode(..., tokens=)`); `.values` is [n, RELATIONS] in input order."""

    def __init__(self, answers: Sequence[str]) -> None:
        self.answers = answers
        self.values = np.zeros((len(answers), RELATIONS))

    def __call__(self, idx: list[int], batch: BatchEncoding, offsets: Tensor,
                 hidden: Tensor) -> None:
        for row, i in enumerate(idx):
            seq = np.array([-1 if k is None else k for k in batch.sequence_ids(row)])
            self.values[i] = relations(self.answers[i], hidden[row], seq, offsets[row].numpy())


def relations(answer: str, hidden: Tensor, seq: np.ndarray, offsets: np.ndarray) -> list[float]:
    """The 8 relations of one pair from its token states ([t, d]), which part each token is
    (0 question, 1 answer, -1 special/padding) and its character span in that part."""
    unit = torch.nn.functional.normalize
    q = unit(hidden[seq == 0].mean(0), dim=0)
    mine = np.flatnonzero(seq == 1)
    a = unit(hidden[mine].mean(0), dim=0) if len(mine) else q
    spans = sentence_spans(answer)
    starts, ends = offsets[mine, 0], offsets[mine, 1]
    k = np.searchsorted([s for s, _ in spans], starts, side="right") - 1
    inside = (k >= 0) & (ends > starts) & (ends <= np.array([e for _, e in spans])[k.clip(0)])
    pooled = [unit(hidden[mine[inside & (k == j)]].mean(0), dim=0)
              for j in range(len(spans)) if (inside & (k == j)).any()]
    e = torch.stack(pooled) if pooled else a[None]  # sentences cut off by truncation drop out
    nxt = [float(e[t] @ e[t + 1]) for t in range(len(e) - 1)] or [1.0]
    to_q = (e @ q).numpy()
    return [float(a @ q), float(np.mean(nxt)), float(np.min(nxt)), float(to_q.mean()),
            float(to_q.min()), float(to_q[-1]), float(torch.linalg.norm(e.mean(0))),
            float(len(spans))]


def form(answers: Sequence[str], tokenizer: PreTrainedTokenizerBase,
         relations: np.ndarray) -> np.ndarray:
    """[n, WIDTH]: each answer's surface statistics, then its relations."""
    return np.hstack([np.array([surface(x, tokenizer) for x in answers]).reshape(-1, 15),
                      relations])
