"""The offline judge's network: a sentence encoder (the bundled MiniLM unless the judge names
another, judges.encoders) with one sigmoid output per rubric, read from the mean of its token
states over a (question, answer) pair."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import AutoModel, AutoTokenizer, BatchEncoding, PreTrainedTokenizerBase

from petridish.errors import PetridishError
from petridish.judges.encoders import MINILM, encoder_folder

MAX_TOKENS = 256  # what MiniLM was trained at; answers here are ≤ ~200 tokens
QUESTION_TOKENS = 64
PRECISIONS = ("fp32", "bf16")
PRECISION_ENV = "PETRIDISH_JUDGE_PRECISION"


def precision() -> str:
    """The encoder's arithmetic: bf16 where the CPU has it natively (AVX512-BF16 or AMX: 2.2×
    the pairs/s here, scores 0.17 from fp32's on average on 0-100), else fp32;
    `PETRIDISH_JUDGE_PRECISION` chooses. Part of the judge's id, since the scores differ
    (judges.offline.single_id)."""
    asked = os.environ.get(PRECISION_ENV)
    if asked:
        if asked not in PRECISIONS:
            raise PetridishError(f"{asked!r} is not one of {', '.join(PRECISIONS)}",
                                 field=PRECISION_ENV)
        return asked
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return "bf16" if native else "fp32"


def encoder_path() -> Path:
    """The bundled MiniLM folder, found without importing its package."""
    return encoder_folder(MINILM)


def load_encoder(name: str = MINILM) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = encoder_folder(name)
    return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def mean_pool(states: Tensor, mask: Tensor) -> Tensor:
    """[n, t, d] states, [n, t] mask -> [n, d] mean over real tokens."""
    m = mask.unsqueeze(-1).to(states.dtype)
    return (states * m).sum(1) / m.sum(1).clamp(min=1.0)


class ScoreNet(nn.Module):
    """Encoder -> mean pool -> linear -> sigmoid: one 0..1 score per rubric."""

    def __init__(self, encoder: nn.Module, rubrics: Sequence[str], dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.rubrics = list(rubrics)
        self.dropout = nn.Dropout(dropout)
        width = int(encoder.config.hidden_size)  # type: ignore[union-attr,arg-type]
        self.head = nn.Linear(width, len(self.rubrics))

    def embed(self, batch: BatchEncoding) -> Tensor:
        out = self.encoder(**batch)
        return mean_pool(out.last_hidden_state, batch["attention_mask"])

    def forward(self, batch: BatchEncoding) -> Tensor:
        """[n, rubrics] logits."""
        return self.head(self.dropout(self.embed(batch)))


def tokenize_pairs(tokenizer: PreTrainedTokenizerBase, questions: Sequence[str],
                   answers: Sequence[str], offsets: bool = False) -> BatchEncoding:
    """Question (cut to 64 tokens) and answer as a BERT sentence pair, padded to the longest
    (with each token's character span when `offsets`)."""
    qs = [tokenizer.convert_tokens_to_string(tokenizer.tokenize(q)[:QUESTION_TOKENS])
          for q in questions]
    return tokenizer(qs, list(answers), truncation="only_second", max_length=MAX_TOKENS,
                     padding=True, return_tensors="pt", return_offsets_mapping=offsets)


def length_order(answers: Sequence[str]) -> list[int]:
    """Indices by answer length (characters), so batches pad little."""
    return sorted(range(len(answers)), key=lambda i: len(answers[i]))


# Sees each batch's token states: (input indices, the batch, its offsets, [b, t, d] states).
TokenReader = Callable[[list[int], BatchEncoding, Tensor, Tensor], None]


@torch.inference_mode()
def encode(net: ScoreNet, tokenizer: PreTrainedTokenizerBase, questions: Sequence[str],
           answers: Sequence[str], batch_size: int = 32,
           progress: Callable[[int], None] | None = None,
           tokens: TokenReader | None = None) -> tuple[Tensor, Tensor]:
    """([n, rubrics] logits, [n, d] pooled embeddings), batched by length; input order kept.
    `tokens`, when given, also reads every batch's token states (judges.textfeatures)."""
    net.eval()
    bf16 = precision() == "bf16"
    device = next(net.parameters()).device.type
    order = length_order(answers)
    logits = torch.empty(len(answers), len(net.rubrics))
    states = torch.empty(len(answers), net.head.in_features)
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        batch = tokenize_pairs(tokenizer, [questions[i] for i in idx], [answers[i] for i in idx],
                               offsets=tokens is not None)
        offsets = batch.pop("offset_mapping", None)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):  # the encoder only
            hidden = net.encoder(**batch).last_hidden_state.float()
        e = mean_pool(hidden, batch["attention_mask"])
        states[idx], logits[idx] = e.float(), net.head(e).float()
        if tokens is not None and offsets is not None:
            tokens(idx, batch, offsets, hidden)
        if progress:
            progress(len(idx))
    return logits, states


def predict(net: ScoreNet, tokenizer: PreTrainedTokenizerBase, questions: Sequence[str],
            answers: Sequence[str], batch_size: int = 32,
            progress: Callable[[int], None] | None = None) -> Tensor:
    """[n, rubrics] scores 0..100, batched by length; input order kept."""
    logits, _ = encode(net, tokenizer, questions, answers, batch_size, progress)
    return torch.sigmoid(logits) * 100
