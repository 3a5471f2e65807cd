"""Foreign texts for self-recognition: answers to our questions that the subject did not
write (human-written, another model's, a file of anyone's), one JSONL row each, joined to an
assay's questions by `question_id` when given, else by exact question text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from petridish.data.formats import (
    Question,
    QuestionSet,
    _read_records,
    _validate,
    content_hash,
    resolve_data_path,
)
from petridish.errors import PetridishError


class ForeignRow(BaseModel):
    """One foreign answer; `source` labels it in every grouped figure."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    question: str | None = Field(None, description="the question text, exactly as asked")
    question_id: str | None = Field(None, description="joins by id instead of text")
    question_set: str | None = Field(None, description="rows of a set the assay does not "
                                     "ask are skipped (a shipped file covers all our sets)")
    answer: str = Field(min_length=1, description="the foreign text")
    source: str = Field("file", min_length=1, description="who wrote it, e.g. human")

    @model_validator(mode="after")
    def _joinable(self) -> ForeignRow:
        if self.question is None and self.question_id is None:
            raise ValueError("needs question or question_id")
        return self


@dataclass(frozen=True)
class ForeignText:
    """A foreign answer joined to one of the assay's questions."""

    qset: str
    question: Question
    answer: str
    source: str


@dataclass(frozen=True)
class ForeignSet:
    """A file of foreign texts, as an assay source (its content enters the stage key)."""

    name: str
    path: str
    rows: tuple[ForeignRow, ...]
    lines: tuple[int, ...]

    def fingerprint(self) -> str:
        return content_hash(self.rows)

    def join(self, sets: Sequence[QuestionSet]) -> list[ForeignText]:
        """Every row on its question; a row that matches none is an error naming its line."""
        by_id: dict[str, list[tuple[str, Question]]] = {}
        by_text: dict[str, list[tuple[str, Question]]] = {}
        for qs in sets:
            for q in qs.questions:
                by_id.setdefault(q.id, []).append((qs.name, q))
                by_text.setdefault(q.text, []).append((qs.name, q))
        names = {qs.name for qs in sets}
        out = []
        for row, line in zip(self.rows, self.lines, strict=True):
            if row.question_set is not None and row.question_set not in names:
                continue
            field, found = (("question_id", by_id.get(row.question_id, []))
                            if row.question_id is not None
                            else ("question", by_text.get(row.question or "", [])))
            if row.question_set is not None:
                found = [f for f in found if f[0] == row.question_set]
            if len(found) != 1:
                what = (f"matches no question of {row.question_set or 'the assay'}"
                        if not found else "matches questions of several sets (add "
                        "question_set)")
                raise PetridishError(what, file=Path(self.path), line=line, field=field)
            qset, q = found[0]
            out.append(ForeignText(qset, q, row.answer, row.source))
        return out


def load_foreign(ref: str, base_dir: Path | None) -> ForeignSet:
    """Read `FILE.jsonl` or `builtin:NAME` (our shipped foreign texts)."""
    path = resolve_data_path(ref, base_dir, "foreign")
    records = _read_records(path)
    if not records:
        raise PetridishError("foreign texts file is empty", file=path)
    rows = tuple(_validate(ForeignRow, rec, path, line, fields)
                 for line, fields, rec in records)
    name = ref.removeprefix("builtin:") if ref.startswith("builtin:") else path.stem
    return ForeignSet(name, str(path), rows, tuple(line for line, _, _ in records))
