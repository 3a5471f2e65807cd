"""Chat examples to training tensors, with the loss on assistant tokens only."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from petridish.data.formats import ChatExample
from petridish.errors import PetridishError

IGNORE = -100  # label of tokens that carry no loss


@dataclass(frozen=True)
class TrainRow:
    """One tokenised example: `labels[i]` is `input_ids[i]` on assistant tokens, else -100."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool


def _ids(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], prompt: bool
) -> list[int]:
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=prompt, tokenize=False)
    assert isinstance(text, str)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def tokenize_example(
    tokenizer: PreTrainedTokenizerBase, example: ChatExample, max_length: int
) -> TrainRow:
    """Assistant replies (with their end-of-turn token) are learned; everything else is context.

    Each assistant span is located by rendering the conversation up to that reply with the
    generation prompt, then including it: the tokens between the two are the reply.
    """
    messages = [m.model_dump() for m in example.messages]
    full = _ids(tokenizer, messages, prompt=False)
    labels = [IGNORE] * len(full)
    found = False
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prefix = _ids(tokenizer, messages[:i], prompt=True)
        start = len(prefix)
        if full[:start] != prefix:
            raise PetridishError("the chat template tokenises a prefix differently from the "
                                 "whole conversation; cannot locate the assistant reply")
        end = len(_ids(tokenizer, messages[: i + 1], prompt=False))
        trailing = _trailing_whitespace(tokenizer, messages[: i + 1])
        for j in range(start, end - trailing):
            labels[j] = full[j]
        found = found or end - trailing > start
    if not found:
        raise PetridishError("example has no assistant turn to learn from", field="messages")
    truncated = len(full) > max_length
    return TrainRow(full[:max_length], labels[:max_length], truncated)


def _trailing_whitespace(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]
) -> int:
    """Tokens after the end-of-turn marker (e.g. ChatML's newline) that the model never emits."""
    ids = _ids(tokenizer, messages, prompt=False)
    n = 0
    while n < min(3, len(ids)) and not str(tokenizer.decode([ids[-1 - n]])).strip():
        n += 1
    return n
