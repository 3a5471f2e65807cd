"""What every assay kind shares: its config base, the `Assay` protocol it implements, what its
`run` is given (`AssayStage`), what it reads back (`AssayResult`) and the rows it reports
(`MetricRow`). A new kind is one module that registers with `@assay("kind")`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import torch
from pydantic import Field
from rich.table import Table

from petridish.interp.intervention import ConditionInfo, Intervention
from petridish.judges.metrics import Mean, Rate
from petridish.models.backend import LocalBackend, SubjectBackend
from petridish.models.sampling import SamplingConfig
from petridish.models.subject import Subject, load_subject, served_backend
from petridish.names import NAME
from petridish.progress import progress_bar
from petridish.store.db import Store
from petridish.store.records import Response
from petridish.store.stage import StageInfo

if TYPE_CHECKING:
    from petridish.judges.stage import Judged
    from petridish.models.loader import LoadedModel
    from petridish.store.run import Run

By = Literal["subject", "question", "tag"]


class AssayConfig(SamplingConfig):
    """Fields every `[[assay]]` table has; a kind adds its own and narrows `kind`."""

    name: str = Field(pattern=NAME, description="unique name of this assay")
    kind: str = Field("freeform", description="assay kind")
    subjects: list[str] | None = Field(None, description="subject names; default all")
    questions: list[str] = Field(min_length=1, description="sources: builtin:NAME or paths")
    dtype: Literal["auto", "fp32", "bf16"] = Field("auto", description="sampling dtype")
    seed: int | None = Field(None, description="sampling seed; default the experiment's")  # type: ignore[assignment]

    def peer_subjects(self) -> list[str]:
        """Subjects besides its own that the assay reads (their fingerprints enter its key)."""
        return []

    def check_experiment(self, exp: Any, base_dir: Path) -> None:
        """References the schema alone cannot check (e.g. an organism's checkpoints); raise
        `PetridishError(field=...)` naming this table's field."""


class Source(Protocol):
    """A question set or item bank: its name and a hash of its content (enters the key)."""

    name: str

    def fingerprint(self) -> str: ...


class SampleInfo(StageInfo):
    """The sampling stage of one assay on one subject."""

    assay: str
    subject: str
    kind: str = "freeform"
    responses: int = 0
    failed: int = 0  # of `responses`; a later run retries them
    condition: ConditionInfo | None = None

    def result(self) -> str:
        return f"{self.responses} responses" + (f", {self.failed} failed" if self.failed else "")


@dataclass
class AssayStage:
    """What an assay's `run` is given: its config, sources and seed; the store to commit to
    (in batches, under `key`); and the subject's backend, loaded on first use (so a stage
    whose every conversation is stored never loads a model), intervention applied."""

    run: Run
    key: str
    name: str
    cfg: AssayConfig
    subject: Subject
    sources: Sequence[Source]
    seed: int
    device: torch.device
    dtype: str
    show_progress: bool
    intervention: Intervention | None = None
    loaded: dict[tuple[str, str], LoadedModel] = field(default_factory=dict)
    backend_factory: Callable[[], SubjectBackend] | None = None  # tests script a subject
    base_dir: Path = Path(".")  # relative question files are read from here
    peers: Mapping[str, Subject] = field(default_factory=dict)  # cfg.peer_subjects()
    _stack: ExitStack = field(default_factory=ExitStack)
    _backend: SubjectBackend | None = None

    @property
    def store(self) -> Store:
        return self.run.store

    def backend(self) -> SubjectBackend:
        if self._backend is None:
            if self.backend_factory is not None:
                self._backend = self.backend_factory()
            elif not self.subject.ref.is_local:  # pre-flight refused interventions on it
                assert self.intervention is None
                self._backend = served_backend(self.subject)
            else:
                cache_key = (self.subject.name, self.dtype)
                lm = self.loaded.get(cache_key) or load_subject(
                    self.subject, device=str(self.device), dtype=self.dtype)
                self.loaded[cache_key] = lm
                if self.intervention is not None:
                    self._stack.enter_context(self.intervention.apply(lm))
                self._backend = LocalBackend(lm)
            self.run.record_model(self.subject.name, {
                **self._backend.describe(), "adapter": str(self.subject.adapter or "")})
        return self._backend

    def progress(self, total: int) -> AbstractContextManager[Callable[[int], None]]:
        return progress_bar(self.name, total, self.show_progress)

    def close(self) -> None:
        """Remove what the intervention added (the model stays loaded for reuse); record what
        the backend saw (a served one: what the server ignored, requests, retries)."""
        self._stack.close()
        if self._backend is not None and self.backend_factory is None:
            self.run.record_model(self.subject.name, {
                **self._backend.describe(), "adapter": str(self.subject.adapter or "")})


@dataclass(frozen=True)
class AssayResult:
    """One assay (or intervention condition) on one subject, read back from the store."""

    name: str
    kind: str
    subject: str
    sample_key: str
    info: SampleInfo
    responses: list[Response]
    judge: str | None = None
    judged: list[Judged] | None = None
    condition: ConditionInfo | None = None


@dataclass(frozen=True)
class MetricRow:
    """One number of a run, as `show --json` prints it: rates are fractions 0-1, `interval`
    names the method, `group` is None for the whole set (else e.g. `tag=medical`)."""

    assay: str
    subject: str
    metric: str
    group: str | None
    value: float | None
    low: float | None
    high: float | None
    interval: str | None
    n: int
    unscored: int
    failed: int = 0  # rows a served subject could not answer: in no rate, counted here

    @classmethod
    def of_rate(cls, assay: str, subject: str, metric: str, r: Rate,
                group: str | None = None, failed: int = 0) -> MetricRow:
        value = None if not r.n else r.value
        return cls(assay, subject, metric, group, value, r.low if r.n else None,
                   r.high if r.n else None, "wilson", r.n, r.unscored, failed)

    @classmethod
    def of_mean(cls, assay: str, subject: str, metric: str, m: Mean,
                group: str | None = None, failed: int = 0) -> MetricRow:
        ok = m.n > 0 and not math.isnan(m.value)
        return cls(assay, subject, metric, group, m.value if ok else None,
                   m.low if ok else None, m.high if ok else None, "normal", m.n, m.unscored,
                   failed)

    def bootstrapped(self, low: float, high: float) -> MetricRow:
        """The same rate with its interval from a bootstrap over questions."""
        ok = self.value is not None and not math.isnan(low)
        return replace(self, low=low if ok else None, high=high if ok else None,
                       interval="bootstrap-question")

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Assay(Protocol):
    """An assay kind. `judged` kinds have every response graded by the experiment's judge in
    a judge stage after sampling; others grade in their own `run` (e.g. by string match)."""

    kind: ClassVar[str]
    version: ClassVar[int]  # bump when `run`'s output would change for the same inputs
    judged: ClassVar[bool]
    config: ClassVar[type[AssayConfig]]

    def sources(self, cfg: AssayConfig, base_dir: Path) -> list[Source]:
        """Read and check the question sets or item banks; errors name file, line, field."""
        ...

    def run(self, stage: AssayStage) -> None:
        """Sample what is not yet stored under `stage.key`, committing in batches."""
        ...

    def metrics(self, results: Sequence[AssayResult], by: By) -> list[MetricRow]: ...

    def show(self, results: Sequence[AssayResult], by: By) -> list[Table]: ...

    def report(self, results: Sequence[AssayResult]) -> str:
        """The kind's section of report.html (HTML)."""
        ...


def batches(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]
