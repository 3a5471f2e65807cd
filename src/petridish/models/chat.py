"""Chat formatting: messages to prompt token ids through the tokenizer's own template."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}


def conversation(text: str, system: str | None = None) -> list[Message]:
    """A one-turn conversation, with the optional system prompt first."""
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": text}]


def prompt_ids(tokenizer: PreTrainedTokenizerBase, messages: list[Message]) -> list[int]:
    """Token ids of `messages` followed by the template's assistant generation prompt."""
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert isinstance(text, str)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
