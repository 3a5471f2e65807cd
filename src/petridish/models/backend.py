"""Subject backends: the one interface assays sample through (`chat`), so an assay never
needs to know whether its subject runs in this process or behind an endpoint."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from petridish.models.chat import Message
from petridish.models.loader import LoadedModel
from petridish.models.sampling import SamplingConfig


@dataclass(frozen=True)
class Reply:
    """One sampled assistant turn, or why there is none (`failed`: a served subject that
    gave up after its retries); a failed reply is never an empty answer."""

    text: str
    n_tokens: int
    finish_reason: Literal["stop", "length", "failed"]
    failed: str | None = None
    prompt_tokens: int = 0


class SubjectBackend(Protocol):
    """Samples replies to whole conversations (system, user and assistant turns)."""

    def chat(self, conversations: Sequence[Sequence[Message]], seeds: Sequence[int],
             sampling: SamplingConfig) -> Iterator[tuple[list[int], list[Reply]]]:
        """One reply per conversation, sampled with its seed; yields `(indices, replies)` as
        replies finish, so a caller can commit them before the rest are done."""
        ...

    def describe(self) -> dict[str, Any]:
        """What meta.json records about the model behind it."""
        ...


class LocalBackend:
    """A transformers model in this process: our batched decode loop."""

    def __init__(self, lm: LoadedModel) -> None:
        self.lm = lm

    def chat(self, conversations: Sequence[Sequence[Message]], seeds: Sequence[int],
             sampling: SamplingConfig) -> Iterator[tuple[list[int], list[Reply]]]:
        from petridish.models.chat import prompt_ids
        from petridish.models.generate import generate

        prompts = [prompt_ids(self.lm.tokenizer, list(c)) for c in conversations]
        cfg = sampling.model_copy(update={"seed": 0})  # every row carries its own seed
        for indices, gens in generate(self.lm, prompts, list(seeds), cfg):
            yield indices, [Reply(g.text, len(g.token_ids), g.finish_reason) for g in gens]

    def describe(self) -> dict[str, Any]:
        return self.lm.describe()
