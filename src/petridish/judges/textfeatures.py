"""Features of an answer's form that the stacked heads read beside the judge's embedding.

The judge's encoder sees a (question, answer) pair at once; whether a small model's answer
holds together is also in how its sentences relate to each other and to the question. So:
15 surface statistics (length, repetition, word fragments, punctuation, person) and 8 sentence
relations from the *unmodified* bundled MiniLM (cosine of each sentence with the next and with
the question, the answer with the question, how spread the sentences are).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from petridish.judges.encoder import length_order, load_encoder, mean_pool

SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
WORD = re.compile(r"[A-Za-z']+")
WIDTH = 23  # 15 surface + 8 sentence features


def sentences(answer: str) -> list[str]:
    found = [s.strip() for s in SENTENCE_END.split(answer) if len(s.strip()) > 3]
    return found or [answer]


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


class FormFeatures:
    """The bundled MiniLM, unmodified, for sentence relations; one instance per judge."""

    def __init__(self, batch_size: int = 64) -> None:
        self.encoder: nn.Module
        self.encoder, self.tokenizer = load_encoder()
        self.encoder.eval()
        self.batch_size = batch_size

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """[n, d] unit-length mean-pooled embeddings, batched by length."""
        order = length_order(texts)
        out = np.empty((len(texts), int(self.encoder.config.hidden_size)),  # type: ignore[union-attr,arg-type]
                       dtype=np.float32)
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            batch = self.tokenizer([texts[i] for i in idx], truncation=True, max_length=256,
                                   padding=True, return_tensors="pt")
            e = mean_pool(self.encoder(**batch).last_hidden_state, batch["attention_mask"])
            out[idx] = torch.nn.functional.normalize(e, dim=-1).numpy()
        return out

    def __call__(self, questions: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        """[n, WIDTH] features, in input order."""
        q, a = self.embed(questions), self.embed(answers)
        parts = [sentences(x) for x in answers]
        flat = self.embed([s for p in parts for s in p])
        out = np.empty((len(answers), WIDTH))
        at = 0
        for i, p in enumerate(parts):
            e, at = flat[at:at + len(p)], at + len(p)
            nxt = [float(e[t] @ e[t + 1]) for t in range(len(e) - 1)] or [1.0]
            to_q = e @ q[i]
            relations = [float(a[i] @ q[i]), float(np.mean(nxt)), float(np.min(nxt)),
                         float(to_q.mean()), float(to_q.min()), float(to_q[-1]),
                         float(np.linalg.norm(e.mean(0))), float(len(e))]
            out[i] = surface(answers[i], self.tokenizer) + relations
        return out
