"""The texts a self-recognition assay scores: the subject's own samples and the foreign ones
(other subjects' samples, files, own samples with a span rewritten by another subject), each
on one of the assay's questions; and the (own, foreign) pairs of the same question."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from petridish.data.formats import Question
from petridish.store.records import Response

OWN = "own"
EDITED = "edited"


@dataclass(frozen=True)
class Text:
    """One text on one question; `index` counts the texts of its source on that question."""

    qset: str
    question: Question
    source: str  # "own", another subject's name, a file's `source`, or "edited"
    index: int
    text: str

    @property
    def own(self) -> bool:
        return self.source == OWN

    @property
    def qkey(self) -> str:
        return f"{self.qset}/{self.question.id}"

    @property
    def key(self) -> str:
        """The stored row's `Response.key`."""
        return f"{self.qkey}/{self.index}/text:{self.source}"


@dataclass(frozen=True)
class Pair:
    """An own and a foreign text of the same question, asked about in both orders."""

    own: Text
    foreign: Text

    @property
    def key(self) -> str:
        return f"{self.own.qkey}/{self.own.index}/pair:{self.foreign.source}"


def from_samples(rows: Sequence[Response], questions: dict[str, Question],
                 source: str) -> list[Text]:
    """Texts from a sample stage's answers (failed and empty answers are left out)."""
    return [Text(r.question_set, questions[f"{r.question_set}/{r.question_id}"], source,
                 r.sample_index, r.answer)
            for r in rows if r.failed is None and r.answer.strip()]


def numbered(items: Sequence[tuple[str, Question, str, str]]) -> list[Text]:
    """(qset, question, source, text) in order, indexed per (question, source)."""
    seen: dict[tuple[str, str, str], int] = {}
    out = []
    for qset, q, source, text in items:
        k = (qset, q.id, source)
        out.append(Text(qset, q, source, seen.get(k, 0), text))
        seen[k] = seen.get(k, 0) + 1
    return out


def pairs(texts: Sequence[Text]) -> list[Pair]:
    """Own text i with foreign text i of each source, per question (as many as both have)."""
    own: dict[str, list[Text]] = {}
    foreign: dict[tuple[str, str], list[Text]] = {}
    for t in texts:
        if t.own:
            own.setdefault(t.qkey, []).append(t)
        else:
            foreign.setdefault((t.qkey, t.source), []).append(t)
    out = []
    for (qkey, _), theirs in sorted(foreign.items()):
        mine = sorted(own.get(qkey, []), key=lambda t: t.index)
        out += [Pair(a, b) for a, b in zip(mine, sorted(theirs, key=lambda t: t.index),
                                           strict=False)]
    return out
