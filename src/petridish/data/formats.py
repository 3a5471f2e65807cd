"""Datasets (chat JSONL) and question sets (JSONL or YAML), validated with file:line errors."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from petridish.errors import PetridishError


class Question(BaseModel):
    """One prompt of an assay."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="unique within the set")
    text: str = Field(min_length=1, description="what the user asks")
    system: str | None = Field(None, description="optional system prompt")
    tags: tuple[str, ...] = Field((), description="e.g. medical, general")


def content_hash(records: Sequence[BaseModel]) -> str:
    """A source's fingerprint: the hash of its records' content (it enters stage keys)."""
    body = json.dumps([r.model_dump() for r in records], sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


class QuestionSet(BaseModel):
    """Named, ordered questions with the file they came from."""

    model_config = ConfigDict(frozen=True)

    name: str
    source: str
    questions: tuple[Question, ...]

    def fingerprint(self) -> str:
        """Content hash: a changed question changes every stage key that uses the set."""
        return content_hash(self.questions)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class ChatExample(BaseModel):
    """One line of a dataset: `{"messages": [...]}`, the format OpenAI, TRL and HF share.
    Training learns from its assistant turns, so there must be one and none may be empty."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: tuple[ChatMessage, ...] = Field(min_length=1)

    @field_validator("messages")
    @classmethod
    def _learnable(cls, value: tuple[ChatMessage, ...]) -> tuple[ChatMessage, ...]:
        replies = [m for m in value if m.role == "assistant"]
        if not replies:
            raise ValueError("no assistant turn to learn from")
        if any(not m.content.strip() for m in replies):
            raise ValueError("an assistant turn is empty")
        return value


def builtin_names(folder: str = "") -> list[str]:
    """Sets shipped in the package (`builtin/` for question sets, `builtin/FOLDER/` for an
    assay kind's own banks), usable as `builtin:NAME`."""
    root = resources.files("petridish.data") / "builtin"
    path = root / folder if folder else root
    if not path.is_dir():
        return []
    return sorted(p.name.rsplit(".", 1)[0] for p in path.iterdir()
                  if p.name.endswith((".yaml", ".jsonl")) and (folder or p.name.endswith(".yaml")))


def resolve_data_path(ref: str, base_dir: Path | None = None, folder: str = "") -> Path:
    """`builtin:NAME` or a path (relative paths are taken from `base_dir`)."""
    if ref.startswith("builtin:"):
        name = ref.removeprefix("builtin:")
        known = builtin_names(folder)
        if name not in known:
            raise PetridishError(f"unknown builtin set {ref!r}; known: {', '.join(known)}")
        root = resources.files("petridish.data") / "builtin"
        base = root / folder if folder else root
        found = [base / f"{name}{ext}" for ext in (".yaml", ".jsonl")
                 if (base / f"{name}{ext}").is_file()]
        return Path(str(found[0]))
    path = Path(ref).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.exists():
        raise PetridishError(f"file not found: {path}")
    return path


def resolve_dataset_path(ref: str, base_dir: Path | None = None) -> Path:
    """`builtin:NAME` (our shipped chat datasets) or a path to a chat JSONL file."""
    if ref.startswith("builtin:"):
        name = ref.removeprefix("builtin:")
        folder = resources.files("petridish.data") / "builtin" / "datasets"
        known = sorted(p.name[: -len(".jsonl")] for p in folder.iterdir()
                       if p.name.endswith(".jsonl")) if folder.is_dir() else []
        if name not in known:
            raise PetridishError(f"unknown builtin dataset {ref!r}; known: {', '.join(known)}")
        return Path(str(folder / f"{name}.jsonl"))
    return resolve_data_path(ref, base_dir)


M = TypeVar("M", bound=BaseModel)


def load_records(ref: str, base_dir: Path | None, kind: type[M],
                 folder: str = "") -> tuple[str, Path, list[M]]:
    """(name, path, records) of a JSONL or YAML list of `kind` with unique `id`s; every error
    names the file, the line and the field."""
    path = resolve_data_path(ref, base_dir, folder)
    items = _read_records(path)
    if not items:
        raise PetridishError("question set is empty", file=path)
    out: list[M] = []
    seen: dict[str, int] = {}
    for line, fields, record in items:
        value = _validate(kind, record, path, line, fields)
        rid = str(getattr(value, "id", line))
        if rid in seen:
            raise PetridishError(f"duplicate id {rid!r} (first on line {seen[rid]})",
                                 file=path, line=fields.get("id", line), field="id")
        seen[rid] = line
        out.append(value)
    name = ref.removeprefix("builtin:") if ref.startswith("builtin:") else path.stem
    return name, path, out


def load_questions(ref: str, base_dir: Path | None = None) -> QuestionSet:
    """Read a question set; every error names the file, the line and the field."""
    name, path, questions = load_records(ref, base_dir, Question)
    return QuestionSet(name=name, source=str(path), questions=tuple(questions))


def load_dataset(path: Path) -> list[ChatExample]:
    """Read a chat JSONL dataset, one `{"messages": [...]}` per line."""
    if not path.exists():
        raise PetridishError(f"file not found: {path}")
    examples = [
        _validate(ChatExample, record, path, line, fields)
        for line, fields, record in _read_records(path)
    ]
    if not examples:
        raise PetridishError("dataset is empty", file=path)
    return examples


Record = tuple[int, dict[str, int], Any]  # (line, {field: line}, value)


def read_text(path: Path) -> str:
    """UTF-8 text of a file; a bad byte is an error naming its line."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise PetridishError(f"file is not UTF-8 text (byte {e.start})", file=path,
                             line=line) from e


def _read_records(path: Path) -> list[Record]:
    text = read_text(path)
    if path.suffix in (".yaml", ".yml"):
        return _yaml_records(text, path)
    return [(number, {}, value) for number, value in jsonl_values(text, path)]


def jsonl_values(text: str, path: Path) -> list[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line; bad JSON names file and line."""
    values = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            values.append((number, json.loads(raw)))
        except json.JSONDecodeError as e:
            raise PetridishError(f"not valid JSON ({e.msg})", file=path, line=number) from e
    return values


def _yaml_records(text: str, path: Path) -> list[Record]:
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        if mark is not None and mark.index >= len(text.rstrip()):  # "but got <stream end>":
            mark = getattr(e, "context_mark", None) or mark  # the construct left open
        line = mark.line + 1 if mark is not None else None
        raise PetridishError(f"not valid YAML ({getattr(e, 'problem', e)})", file=path,
                             line=line) from e
    if data is None:
        return []
    if not isinstance(data, list) or root is None:
        raise PetridishError("expected a YAML list of items", file=path, line=1)
    records: list[Record] = []
    for node, value in zip(root.value, data, strict=True):
        fields = {}
        if isinstance(node, yaml.MappingNode):
            fields = {k.value: k.start_mark.line + 1 for k, _ in node.value}
        records.append((node.start_mark.line + 1, fields, value))
    return records


def _validate(kind: type[Any], record: Any, path: Path, line: int, fields: dict[str, int]) -> Any:
    if not isinstance(record, dict):
        raise PetridishError("expected an object with named fields", file=path, line=line)
    try:
        return kind.model_validate(record)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(p) for p in err["loc"]]
        top = loc[0] if loc else None
        message = (err["msg"].removeprefix("Value error, ") if err["type"] != "extra_forbidden"
                   else "unknown field")
        return _raise(message, path, fields.get(top or "", line), ".".join(loc) or None)


def _raise(message: str, path: Path, line: int, field: str | None) -> Any:
    raise PetridishError(message, file=path, line=line, field=field)
