"""The experiment file: a typed schema (unknown keys are errors) with file:line messages."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)

from petridish.assays.base import AssayConfig
from petridish.assays.registry import config_union, get_assay, kinds
from petridish.data.formats import load_questions, read_text
from petridish.errors import PetridishError
from petridish.interp.config import AblateConfig, DirectionConfig, SteerConfig
from petridish.judges.config import JudgeConfig
from petridish.judges.rubrics import load_rubrics
from petridish.models.http import EndpointSettings
from petridish.models.refs import DEFAULT_MODEL, ModelRef, parse_model_ref
from petridish.names import NAME, TABLE
from petridish.store.run import RunIdentity
from petridish.train.config import TrainConfig, expand_sweeps

if TYPE_CHECKING:
    AssayTable = AssayConfig
else:
    AssayTable = config_union()  # the registered kinds' configs, chosen by `kind`


class SubjectTable(BaseModel):
    """`[subjects.NAME]`: a model reference plus how to reach and pace a served one."""

    model_config = TABLE

    ref: str = Field(description="bundled:NAME, a folder, an HF id, openai:MODEL or "
                     "http://HOST:PORT/v1#MODEL")
    api_key_env: str | None = Field(None, description="environment variable holding the API "
                                    "key (default OPENAI_API_KEY for openai:, none for http://)")
    concurrency: int = Field(8, ge=1, le=256, description="requests in flight")
    timeout: float = Field(60.0, gt=0, description="seconds per request")
    max_retries: int = Field(4, ge=0, le=20, description="retries of a transient failure")
    backoff: float = Field(1.0, ge=0, le=60, description="seconds before the first retry "
                           "(doubles each time; a Retry-After header overrides it)")

    def endpoint(self) -> EndpointSettings:
        return EndpointSettings(self.api_key_env, self.concurrency, self.timeout,
                                self.max_retries, self.backoff)


def _subject_form(value: Any) -> str:
    return "table" if isinstance(value, dict | SubjectTable) else "ref"


SubjectEntry = Annotated[Annotated[str, Tag("ref")] | Annotated[SubjectTable, Tag("table")],
                         Discriminator(_subject_form)]


class Experiment(BaseModel):
    """One declared experiment; its validated content names its run folder."""

    model_config = TABLE

    name: str = Field(pattern=NAME, description="run folders are named <name>-<hash>")
    description: str = Field("", description="free text, shown in reports")
    seed: int = Field(0, description="default seed of every stage")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    subjects: dict[str, SubjectEntry] = Field(
        default_factory=lambda: dict[str, str | SubjectTable](base=DEFAULT_MODEL),
        description="name -> model reference, or a [subjects.NAME] table",
    )
    train: list[TrainConfig] = Field(default_factory=list, description="[[train]] tables")
    assay: list[AssayTable] = Field(default_factory=list, description="[[assay]] tables, "
                                   "one union member per assay kind")
    judge: JudgeConfig = Field(default_factory=lambda: JudgeConfig.model_validate({}),
                               description="[judge] table")
    direction: list[DirectionConfig] = Field(default_factory=list, description="[[direction]]")
    steer: list[SteerConfig] = Field(default_factory=list, description="[[steer]] sweeps")
    ablate: list[AblateConfig] = Field(default_factory=list, description="[[ablate]] conditions")

    def subject_names(self) -> list[str]:
        """Declared models, then organisms grown by train stages."""
        return [*self.subjects, *(t.name for t in self.train)]

    def subject_table(self, name: str) -> SubjectTable:
        entry = self.subjects[name]
        return (entry if isinstance(entry, SubjectTable)
                else SubjectTable.model_validate({"ref": entry}))

    def subject_ref(self, name: str, base_dir: Path | None = None) -> ModelRef:
        return parse_model_ref(self.subject_table(name).ref, base_dir=base_dir)

    def is_served(self, name: str, base_dir: Path | None = None) -> bool:
        """A declared subject behind an endpoint (organisms are always local)."""
        return name in self.subjects and not self.subject_ref(name, base_dir).is_local

    @field_validator("train")
    @classmethod
    def _sweeps(cls, value: list[TrainConfig]) -> list[TrainConfig]:
        return expand_sweeps(value)

    @field_validator("subjects")
    @classmethod
    def _subject_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.match(NAME, name):
                raise ValueError(f"subject name {name!r} must be letters, digits, _ . -")
        return value

    def short_hash(self) -> str:
        """Hash of the validated content: same experiment, same run folder."""
        body = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:8]

    def identity(self) -> RunIdentity:
        return RunIdentity(self.name, self.short_hash(), self.seed,
                           self.model_dump_json(indent=2))


def load_experiment(path: Path) -> Experiment:
    """Parse, validate and cross-check an experiment file; nothing is written."""
    if not path.exists():
        raise PetridishError("experiment file not found", file=path)
    if not path.is_file():  # a directory, or a FIFO that would block the read forever
        raise PetridishError("not a regular file; give the experiment's TOML file", file=path)
    try:
        text = read_text(path)
        data = tomllib.loads(text)
    except OSError as e:
        raise PetridishError(f"cannot read the file ({e.strerror or type(e).__name__})",
                             file=path) from e
    except tomllib.TOMLDecodeError as e:
        line = re.search(r"line (\d+)", str(e))
        raise PetridishError(f"not valid TOML ({str(e).split(' (')[0]})", file=path,
                             line=int(line.group(1)) if line else None) from e
    try:
        exp = Experiment.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = _strip_tags(list(err["loc"]))
        if err["type"] == "union_tag_invalid" and loc[:1] == ["subjects"]:
            msg = "a subject is a model reference or a table with ref = \"...\""
        msg = ("unknown key" if err["type"] == "extra_forbidden"
               else err["msg"].removeprefix("Value error, "))
        if err["type"] == "union_tag_invalid":
            msg = (f"unknown assay kind {err['ctx']['tag']!r}; known: "
                   f"{', '.join(sorted(kinds()))}")
            loc = [*loc, "kind"]
        raise PetridishError(msg, file=path, line=line_of(text, loc),
                             field=_dotted(loc)) from e
    _cross_check(exp, path, text)
    return exp


def _cross_check(exp: Experiment, path: Path, text: str) -> None:
    """References that the schema alone cannot check: models, subjects, question files."""
    base = path.parent
    for name, entry in exp.subjects.items():
        at: list[Any] = ["subjects", name] + (["ref"] if isinstance(entry, SubjectTable) else [])
        try:
            exp.subject_ref(name, base)
        except PetridishError as e:
            raise PetridishError(e.message, file=path, line=line_of(text, at),
                                 field=_dotted(at)) from e
    _check_train(exp, path, text)
    _check_judge(exp, path, text)
    _check_interp(exp, path, text)
    seen: set[str] = set()
    for i, assay in enumerate(exp.assay):
        where = ["assay", i]
        if assay.name in seen:
            raise PetridishError(f"duplicate assay name {assay.name!r}", file=path,
                                 line=line_of(text, [*where, "name"]), field=f"assay[{i}].name")
        seen.add(assay.name)
        for key, names in (("subjects", assay.subjects or exp.subject_names()),
                           ("others", assay.peer_subjects())):
            for s in names:
                if s not in exp.subject_names():
                    raise PetridishError(
                        f"unknown subject {s!r}; declared: {', '.join(exp.subject_names())}",
                        file=path, line=line_of(text, [*where, key]),
                        field=f"assay[{i}].{key}")
        try:
            assay.check_experiment(exp, base)
        except PetridishError as e:
            at = [*where, e.field] if e.field else where
            raise PetridishError(e.message, file=path, line=line_of(text, at),
                                 field=f"assay[{i}]" + (f".{e.field}" if e.field else "")) from e
        try:
            get_assay(assay.kind).sources(assay, base)
        except PetridishError as e:
            if e.file:
                raise  # the error is inside the source file, and names it
            raise PetridishError(e.message, file=path, line=line_of(text, [*where, "questions"]),
                                 field=f"assay[{i}].questions") from e


def _check_train(exp: Experiment, path: Path, text: str) -> None:
    """Organism names are new subjects; they start from a local subject or an earlier organism."""
    from petridish.data.formats import resolve_dataset_path

    grown: list[str] = []
    for i, t in enumerate(exp.train):
        def fail(message: str, key: str, i: int = i) -> PetridishError:
            return PetridishError(message, file=path, line=line_of(text, ["train", i, key]),
                                  field=f"train[{i}].{key}")

        if t.name in exp.subjects or t.name in grown:
            raise fail(f"name {t.name!r} is already a subject or organism", "name")
        if t.subject not in exp.subjects:
            raise fail(f"unknown subject {t.subject!r}; declared: {', '.join(exp.subjects)}",
                       "subject")
        if exp.is_served(t.subject, path.parent):
            raise fail(f"subject {t.subject!r} is a served model and cannot be trained here; "
                       "train a local copy, or serve the organism you trained", "subject")
        if t.init_from is not None and t.init_from not in grown:
            raise fail(f"init_from {t.init_from!r} is not an organism trained earlier in this "
                       "file", "init_from")
        if t.method == "lora" and t.layout is not None and t.layers is not None:
            raise fail("give either layout or layers, not both", "layers")
        try:
            resolve_dataset_path(t.dataset, path.parent)
        except PetridishError as e:
            raise fail(e.message, "dataset") from e
        grown.append(t.name)


def _check_judge(exp: Experiment, path: Path, text: str) -> None:
    """Rubric names and the backend's form; reaching the backend is the runner's job."""
    try:
        load_rubrics(exp.judge.rubrics)
    except PetridishError as e:
        raise PetridishError(e.message, file=path, line=line_of(text, ["judge", "rubrics"]),
                             field="judge.rubrics") from e
    b = exp.judge.backend
    if b not in ("offline", "offline-large") and not b.startswith(
            ("offline:", "hf:", "openai:", "http://", "https://")):
        raise PetridishError(f"unknown judge backend {b!r}: use offline, offline-large, "
                             "offline:DIR, openai:MODEL, "
                             "http://HOST/v1#MODEL or hf:PATH", file=path,
                             line=line_of(text, ["judge", "backend"]), field="judge.backend")
    folder = exp.judge.folder(path.parent)
    if folder is not None and not (folder / "weights.safetensors").exists():
        raise PetridishError(f"no judge weights in {folder} (build them with `petridish judge "
                             "retrain --output DIR`)", file=path,
                             line=line_of(text, ["judge", "backend"]), field="judge.backend")
    if b.startswith(("openai:", "http://", "https://")):
        try:
            parse_model_ref(b)
        except PetridishError as e:
            raise PetridishError(e.message, file=path, line=line_of(text, ["judge", "backend"]),
                                 field="judge.backend") from e


def _check_interp(exp: Experiment, path: Path, text: str) -> None:
    """Directions name sampled, judged subjects; interventions name earlier directions."""
    subjects = exp.subject_names()
    assays = {a.name: (a.subjects or subjects) for a in exp.assay}
    judged_kind = {a.name: a.kind for a in exp.assay}
    names: set[str] = set(assays)

    def fail(table: str, i: int, key: str, message: str) -> PetridishError:
        return PetridishError(message, file=path, line=line_of(text, [table, i, key]),
                              field=f"{table}[{i}].{key}")

    known: list[str] = []
    for i, d in enumerate(exp.direction):
        if d.name in known:
            raise fail("direction", i, "name", f"duplicate direction name {d.name!r}")
        for key, who in (("subject", [d.subject]), ("contrast", d.contrast or []),
                         ("fallback_contrast", d.fallback_contrast or []),
                         ("texts_of", [d.texts_of] if d.texts_of else [])):
            for s in who:
                if s not in subjects:
                    raise fail("direction", i, key, f"unknown subject {s!r}")
        if d.assay not in assays:
            raise fail("direction", i, "assay", f"unknown assay {d.assay!r}")
        if not get_assay(judged_kind[d.assay]).judged:
            raise fail("direction", i, "assay", f"assay {d.assay!r} is of kind "
                       f"{judged_kind[d.assay]!r}, whose answers are not judged; a direction "
                       "needs judged answers")
        if (d.texts_of or d.subject) not in assays[d.assay]:
            raise fail("direction", i, "assay", f"assay {d.assay!r} does not sample "
                       f"{d.texts_of or d.subject!r}")
        from petridish.interp.filters import parse_filter

        for key in ("a", "b"):
            missing = [r for r in parse_filter(getattr(d, key)).rubrics
                       if r not in exp.judge.rubrics]
            if missing and d.contrast is None:
                raise fail("direction", i, key, f"rubric {missing[0]!r} is not judged; add it "
                           "to [judge] rubrics")
        known.append(d.name)
    for table, items in (("steer", exp.steer), ("ablate", exp.ablate)):
        for i, c in enumerate(items):
            if c.name in names:
                raise fail(table, i, "name", f"name {c.name!r} is already used")
            names.add(c.name)
            if c.subject not in subjects:
                raise fail(table, i, "subject", f"unknown subject {c.subject!r}")
            if c.direction not in known:
                raise fail(table, i, "direction", f"unknown direction {c.direction!r}; "
                           f"declared: {', '.join(known) or 'none'}")
            for q in c.questions:
                try:
                    load_questions(q, path.parent)
                except PetridishError as e:
                    raise fail(table, i, "questions", e.message) from e


def _strip_tags(loc: list[Any]) -> list[Any]:
    """Drop the union tags pydantic puts in locations: after `assay[i]` (the kind, e.g.
    `assay.0.pressure.rounds`) and after `subjects.NAME` (`ref` or `table`)."""
    known = set(kinds())
    return [p for k, p in enumerate(loc)
            if not (k >= 2 and loc[k - 2] == "assay" and isinstance(loc[k - 1], int)
                    and p in known)
            and not (k == 2 and loc[0] == "subjects" and p in ("ref", "table"))]


def locate(e: PetridishError, path: Path) -> PetridishError:
    """An error a later check raised with only a field (`steer[0].layers`), placed at the
    experiment file's line of that field."""
    if e.file is not None or not e.field or not path.is_file():
        return e
    loc: list[Any] = []
    for part in e.field.split("."):
        name, _, rest = part.partition("[")
        loc.append(name)
        loc += [int(x) for x in rest.rstrip("]").split("][") if x.isdigit()]
    return PetridishError(e.message, file=path, line=line_of(read_text(path), loc),
                          field=e.field)


def _dotted(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def line_of(text: str, loc: list[Any]) -> int | None:
    """Best-effort line of a key path in TOML text (tomllib keeps no positions)."""
    lines = text.splitlines()
    start, table = 0, ""
    found: int | None = None
    for i, part in enumerate(loc):
        if isinstance(part, int):
            headers = [n for n, ln in enumerate(lines) if ln.strip() == f"[[{table}]]"]
            if part < len(headers):
                start = found = headers[part]
            continue
        key = str(part)
        table = key if i == 0 else f"{table}.{key}"
        pattern = re.compile(rf"^\s*(\[+\s*({re.escape(key)}|{re.escape(table)})\s*\]+|"
                             rf"\"?{re.escape(key)}\"?\s*=)")
        for n in range(start, len(lines)):
            if pattern.match(lines[n]):
                start = found = n
                break
    return found + 1 if found is not None else None
