"""What the store holds, as typed records: a response is a transcript plus per-turn metadata."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from petridish.models.chat import Message


@dataclass(frozen=True)
class Turn:
    """How one assistant turn was sampled; `meta` holds what an assay adds (e.g. a grade)."""

    n_tokens: int
    finish_reason: str
    seed: int
    meta: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"n_tokens": self.n_tokens, "finish_reason": self.finish_reason,
                "seed": self.seed, **({"meta": dict(self.meta)} if self.meta else {})}


@dataclass(frozen=True)
class Response:
    """One conversation of one subject: `messages` (system, user and assistant turns, in
    order), one `Turn` per assistant message, and what the assay records about it in `meta`.

    `(question_set, question_id, sample_index, variant)` is unique within a stage; `variant`
    tells apart several conversations from one question and sample (e.g. the push of a
    pressure dialogue)."""

    stage_key: str
    assay: str
    subject: str
    question_set: str
    question_id: str
    sample_index: int
    messages: tuple[Message, ...]
    turns: tuple[Turn, ...]
    tags: tuple[str, ...] = ()
    variant: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    failed: str | None = None  # why the last turn has no reply (a served subject gave up)

    @property
    def question(self) -> str:
        """The first user turn."""
        return next(m["content"] for m in self.messages if m["role"] == "user")

    @property
    def system(self) -> str | None:
        return next((m["content"] for m in self.messages if m["role"] == "system"), None)

    @property
    def answer(self) -> str:
        """The last assistant turn ("" for a failed response, which has none: read `failed`
        first; failed responses are never judged or counted in rates)."""
        if self.failed is not None:
            return ""
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "assistant")

    @property
    def replies(self) -> list[str]:
        return [m["content"] for m in self.messages if m["role"] == "assistant"]

    @property
    def n_tokens(self) -> int:
        return sum(t.n_tokens for t in self.turns)

    @property
    def finish_reason(self) -> str:
        return self.turns[-1].finish_reason

    @property
    def seed(self) -> int:
        return self.turns[0].seed

    @property
    def key(self) -> str:
        """`set/question/sample[/variant]`: names the conversation within its stage."""
        base = f"{self.question_set}/{self.question_id}/{self.sample_index}"
        return f"{base}/{self.variant}" if self.variant else base

    def as_row(self) -> dict[str, Any]:
        """A flat row for exports: the transcript, its turns, and the usual columns."""
        return {"stage_key": self.stage_key, "assay": self.assay, "subject": self.subject,
                "question_set": self.question_set, "question_id": self.question_id,
                "sample_index": self.sample_index, "variant": self.variant,
                "question": self.question, "system": self.system, "tags": list(self.tags),
                "answer": None if self.failed else self.answer, "failed": self.failed,
                "n_tokens": self.n_tokens,
                "finish_reason": self.finish_reason, "seed": self.seed,
                "messages": [dict(m) for m in self.messages],
                "turns": [t.as_dict() for t in self.turns], "meta": dict(self.meta)}


def single_turn(stage_key: str, assay: str, subject: str, question_set: str, question_id: str,
                sample_index: int, question: str, system: str | None, answer: str, turn: Turn,
                tags: Sequence[str] = (), failed: str | None = None) -> Response:
    """The free-form shape: optional system prompt, one question, one answer (none if
    `failed`)."""
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": question})
    if failed is None:
        messages.append({"role": "assistant", "content": answer})
    return Response(stage_key, assay, subject, question_set, question_id, sample_index,
                    tuple(messages), (turn,), tuple(tags), failed=failed)


def response_from_row(data: dict[str, Any]) -> Response:
    turns = tuple(Turn(t["n_tokens"], t["finish_reason"], t["seed"], t.get("meta", {}))
                  for t in json.loads(data["turns"]))
    return Response(data["stage_key"], data["assay"], data["subject"], data["question_set"],
                    data["question_id"], int(data["sample_index"]),
                    tuple(json.loads(data["messages"])), turns,
                    tuple(json.loads(data["tags"])), data["variant"], json.loads(data["meta"]),
                    data.get("failed"))


def response_to_row(r: Response) -> dict[str, Any]:
    return {"stage_key": r.stage_key, "assay": r.assay, "subject": r.subject,
            "question_set": r.question_set, "question_id": r.question_id,
            "sample_index": r.sample_index, "variant": r.variant, "question": r.question,
            "system": r.system, "tags": json.dumps(list(r.tags)), "answer": r.answer,
            "n_tokens": r.n_tokens, "finish_reason": r.finish_reason, "seed": r.seed,
            "messages": json.dumps([dict(m) for m in r.messages], ensure_ascii=False),
            "turns": json.dumps([t.as_dict() for t in r.turns]),
            "meta": json.dumps(dict(r.meta), ensure_ascii=False), "failed": r.failed}
