"""Log-probability of given answers under a model: judges and assays score text with it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from petridish.models.chat import Message, prompt_ids
from petridish.models.decode import supports_fast_path
from petridish.models.loader import LoadedModel


@dataclass(frozen=True)
class AnswerLogprob:
    """Per-token log-probabilities (natural log) of an answer, and their sum."""

    token_ids: list[int]
    token_logprobs: list[float]

    @property
    def total(self) -> float:
        return float(sum(self.token_logprobs))


@torch.inference_mode()
def answer_logprobs(
    lm: LoadedModel,
    conversations: list[list[Message]],
    answers: list[str],
    *,
    batch_size: int = 16,
    include_end_of_turn: bool = False,
) -> list[AnswerLogprob]:
    """Score `answers[i]` as the assistant reply to `conversations[i]`, batched, right-padded."""
    if len(conversations) != len(answers):
        raise ValueError("one answer per conversation")
    tok = lm.tokenizer
    rows: list[tuple[list[int], list[int]]] = []
    for messages, answer in zip(conversations, answers, strict=True):
        reply = list(tok(answer, add_special_tokens=False)["input_ids"])
        if include_end_of_turn:
            reply.append(lm.end_of_turn_id)
        rows.append((prompt_ids(tok, messages), reply))
    out: list[AnswerLogprob] = []
    for start in range(0, len(rows), batch_size):
        out.extend(_score_batch(lm, rows[start : start + batch_size]))
    return out


def _score_batch(lm: LoadedModel, rows: list[tuple[list[int], list[int]]]) -> list[AnswerLogprob]:
    width = max(len(p) + len(a) for p, a in rows)
    ids = torch.full((len(rows), width), lm.tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, (p, a) in enumerate(rows):
        ids[r, : len(p) + len(a)] = torch.tensor(p + a)
        mask[r, : len(p) + len(a)] = 1
    ids, mask = ids.to(lm.device), mask.to(lm.device)
    # positions whose next-token distribution predicts an answer token
    where = [(r, len(p) - 1 + j) for r, (p, a) in enumerate(rows) for j in range(len(a))]
    if not where:  # only empty answers: nothing to score
        return [AnswerLogprob([], []) for _ in rows]
    r_idx = torch.tensor([w[0] for w in where], dtype=torch.long, device=lm.device)
    t_idx = torch.tensor([w[1] for w in where], dtype=torch.long, device=lm.device)
    model = lm.model
    if supports_fast_path(model):  # LM head only where it is needed
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        logits = model.lm_head(hidden[r_idx, t_idx]).float()
    else:
        logits = model(input_ids=ids, attention_mask=mask).logits[r_idx, t_idx].float()
    targets = ids[r_idx, t_idx + 1]
    picked = torch.log_softmax(logits, -1).gather(1, targets[:, None])[:, 0].tolist()
    result, k = [], 0
    for _, a in rows:
        result.append(AnswerLogprob(list(a), picked[k : k + len(a)]))
        k += len(a)
    return result
