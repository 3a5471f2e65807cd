"""What a model says about a text without sampling: the mean log-probability of the text in
its own assistant turn, and its next-token choice between two answers (yes/no, A/B) after a
question about it. One forward pass gives both (the follow-up question comes after the text,
so causal attention leaves the text's log-probabilities unchanged)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from petridish.models.chat import Message, prompt_ids
from petridish.models.decode import supports_fast_path
from petridish.models.loader import LoadedModel


@dataclass(frozen=True)
class TextScore:
    """`mean_logprob`: natural-log mean over the text's tokens (None without tokens);
    `choice`: P(first option) / (P(first) + P(second)) at the end (None without a probe)."""

    mean_logprob: float | None
    tokens: int
    choice: float | None


def option_ids(lm: LoadedModel, words: tuple[str, str]) -> tuple[int, int]:
    """The first token of each word as the reply's first token (e.g. "Yes", "No")."""
    ids = [list(lm.tokenizer(w, add_special_tokens=False)["input_ids"]) for w in words]
    if not all(ids) or ids[0][0] == ids[1][0]:
        raise ValueError(f"options {words} do not start with distinct tokens")
    return ids[0][0], ids[1][0]


def _render(lm: LoadedModel, messages: list[Message]) -> str:
    text = lm.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                            tokenize=False)
    assert isinstance(text, str)
    return text


def text_row(lm: LoadedModel, prompt: list[Message], text: str,
             probe: str | None) -> tuple[list[int], int, int]:
    """(ids, start, end) of `prompt`, `text` as the assistant turn at `ids[start:end]`, then
    (with `probe`) a user turn asking about it and the generation prompt. The text is
    tokenised alone, as `answer_logprobs` does, so both give the same numbers."""
    head = prompt_ids(lm.tokenizer, prompt)
    body = list(lm.tokenizer(text, add_special_tokens=False)["input_ids"])
    if probe is None:
        return head + body, len(head), len(head) + len(body)
    whole = _render(lm, [*prompt, {"role": "assistant", "content": text},
                         {"role": "user", "content": probe}])
    before = _render(lm, prompt) + text
    if not whole.startswith(before):
        raise ValueError("the chat template rewrites the assistant turn; cannot score it "
                         "in place")
    tail = list(lm.tokenizer(whole[len(before):], add_special_tokens=False)["input_ids"])
    return head + body + tail, len(head), len(head) + len(body)


@torch.inference_mode()
def score_rows(lm: LoadedModel, rows: Sequence[tuple[list[int], int, int]],
               options: tuple[int, int] | None, batch_size: int = 16) -> list[TextScore]:
    """Batched, right-padded: each row's mean log-probability of `ids[start:end]` and, with
    `options`, the two-way softmax of their logits at the last position."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    found: dict[int, TextScore] = {}
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        for i, score in zip(idx, _batch(lm, [rows[i] for i in idx], options), strict=True):
            found[i] = score
    return [found[i] for i in range(len(rows))]


def _batch(lm: LoadedModel, rows: list[tuple[list[int], int, int]],
           options: tuple[int, int] | None) -> list[TextScore]:
    width = max(len(ids) for ids, _, _ in rows)
    ids = torch.full((len(rows), width), int(lm.tokenizer.pad_token_id or 0), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, (seq, _, _) in enumerate(rows):
        ids[r, :len(seq)] = torch.tensor(seq)
        mask[r, :len(seq)] = 1
    # the logits at position t predict token t + 1
    where = [(r, t) for r, (_, a, b) in enumerate(rows) for t in range(a - 1, b - 1)]
    last = [(r, len(seq) - 1) for r, (seq, _, _) in enumerate(rows)]
    pos = where + (last if options else [])
    r_idx = torch.tensor([p[0] for p in pos], dtype=torch.long)
    t_idx = torch.tensor([p[1] for p in pos], dtype=torch.long)
    model = lm.model
    dev_ids, dev_mask = ids.to(lm.device), mask.to(lm.device)
    if supports_fast_path(model):  # the LM head only where it is needed
        hidden = model.model(input_ids=dev_ids, attention_mask=dev_mask).last_hidden_state
        logits = model.lm_head(hidden[r_idx.to(lm.device), t_idx.to(lm.device)]).float().cpu()
    else:
        logits = model(input_ids=dev_ids, attention_mask=dev_mask).logits[
            r_idx.to(lm.device), t_idx.to(lm.device)].float().cpu()
    n = len(where)
    picked = torch.log_softmax(logits[:n], -1).gather(
        1, ids[r_idx[:n], t_idx[:n] + 1][:, None])[:, 0]
    choice: list[float | None] = [None] * len(rows)
    if options:
        pair = logits[n:][:, list(options)]
        choice = [float(x) for x in torch.softmax(pair, -1)[:, 0]]
    out, k = [], 0
    for r, (_, a, b) in enumerate(rows):
        span = picked[k:k + b - a]
        k += b - a
        out.append(TextScore(float(span.mean()) if b > a else None, b - a, choice[r]))
    return out
