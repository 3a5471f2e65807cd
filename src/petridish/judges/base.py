"""What every judge backend shares: the item it grades, the judgment it returns, a registry."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from petridish.judges.rubrics import Rubric
from petridish.models.chat import Message


@dataclass(frozen=True)
class Item:
    """One (question, answer) pair to grade; `Item.of` makes one from a transcript."""

    question: str
    answer: str

    @classmethod
    def of(cls, messages: Sequence[Message], sees: str = "last_reply") -> Item:
        """What a rubric sees of a transcript: the last reply, with the user turn before it
        (`last_reply`), or with the whole conversation before it, as labelled text
        (`conversation`). A one-turn transcript gives the same item either way."""
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        before = list(messages[:last])
        users = [m for m in before if m["role"] == "user"]
        if sees == "last_reply" or len(users) <= 1:
            return cls(users[-1]["content"] if users else "", messages[last]["content"])
        context = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in before
                               if m["role"] != "system")
        return cls(context, messages[last]["content"])

    def digest(self) -> str:
        """Cache key of the text a judge sees."""
        body = f"{len(self.question)}:{self.question}\0{self.answer}"
        return hashlib.sha256(body.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Judgment:
    """One rubric's score of one item, or None with the reason it is unscored.

    `transient` marks failures worth retrying on a later run (timeouts, 5xx, 429);
    they are never cached. `mass` is the probability on number tokens (logprob judges).
    """

    score: float | None
    judge: str
    rubric: str
    version: int
    reason: str | None = None
    mass: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    transient: bool = False

    @property
    def scored(self) -> bool:
        return self.score is not None


def unscored(judge: str, rubric: Rubric, reason: str, *, transient: bool = False,
             mass: float | None = None, tokens_in: int = 0, tokens_out: int = 0) -> Judgment:
    return Judgment(None, judge, rubric.name, rubric.version, reason, mass, tokens_in,
                    tokens_out, transient)


class Judge(Protocol):
    """A backend: `id` names it in every stored score (backend, model, weights)."""

    id: str

    def judge(self, items: Sequence[Item], rubrics: Sequence[Rubric],
              progress: Callable[[int], None] | None = None) -> dict[str, list[Judgment]]:
        """Per rubric name, one judgment per item, in order; `progress` counts judgments."""
        ...


Factory = Callable[[str, "JudgeSettings"], Judge]
BACKENDS: dict[str, Factory] = {}  # prefix -> factory; judges.backends registers the builtins


@dataclass(frozen=True)
class JudgeSettings:
    """How to reach and pace a served judge; ignored by the offline one."""

    api_key_env: str | None = None
    mode: str = "logprobs"  # or "parse" for endpoints without logprobs
    concurrency: int = 8
    timeout: float = 60.0
    max_retries: int = 4
    backoff: float = 1.0  # seconds before the first retry; doubles each time
    device: str = "cpu"


def register(prefix: str) -> Callable[[Factory], Factory]:
    """Register a backend for specs starting with `prefix` (e.g. "openai:")."""
    def deco(factory: Factory) -> Factory:
        BACKENDS[prefix] = factory
        return factory
    return deco
