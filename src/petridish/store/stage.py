"""The one way every stage runs: key from its inputs and code version, skip if stored, begin,
do the work (which commits its results in batches), finish with a typed info.

Stage infos are pydantic models, stored as JSON beside the stage and read back typed; the
builtin stage kinds are listed once below, imported only when a stored run is read."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from petridish.progress import console
from petridish.store.db import StageRecord
from petridish.store.keys import stage_key

if TYPE_CHECKING:
    from petridish.store.run import Run


class StageInfo(BaseModel):
    """What a stage says about itself; subclasses add their fields."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    def result(self) -> str:
        """One line for `petridish show`."""
        return ""


InfoT = TypeVar("InfoT", bound=StageInfo)


@dataclass(frozen=True)
class Done(Generic[InfoT]):
    """A finished stage: its key (later stages key on it), its info, and whether it ran now."""

    key: str
    info: InfoT
    skipped: bool


def run_stage(run: Run, kind: str, name: str, version: int, inputs: dict[str, Any],
              begin: InfoT, work: Callable[[str], InfoT], *,
              complete: Callable[[InfoT], bool] | None = None) -> Done[InfoT]:
    """Run `work(key)` unless a finished stage with the same key is stored (and
    `complete(info)` says nothing is missing: its files exist, no row failed); a stage that
    was begun and not finished, or is incomplete, is resumed by the same `work`, which skips
    what it already committed."""
    key = stage_key(kind, version, inputs)
    record = run.store.stage(key)
    if record and record.status == "done":
        stored = type(begin).model_validate(record.info)
        if complete is None or complete(stored):
            console.print(f"[dim]{name}: stored, skipped[/dim]")
            return Done(key, stored, True)
    run.store.begin_stage(key, name, kind, begin.model_dump(mode="json"))
    try:
        info = work(key)
    except KeyboardInterrupt:
        run.store.fail_stage(key, "interrupted", "stopped by the user")
        raise
    except Exception as e:  # the stage says why; the error itself goes on to the CLI
        run.store.fail_stage(key, "failed", " ".join(str(e).split())[:300] or type(e).__name__)
        raise
    run.store.finish_stage(key, info.model_dump(mode="json"))
    return Done(key, info, False)


# stage kind -> its info type, imported when a stored run is read
_INFO_TYPES = {
    "train": "petridish.train.stage:TrainInfo",
    "sample": "petridish.assays.base:SampleInfo",
    "judge": "petridish.judges.stage:JudgeInfo",
    "direction": "petridish.interp.stage:DirectionInfo",
}


def info_type(kind: str) -> type[StageInfo]:
    path = _INFO_TYPES.get(kind)
    if path is None:
        return StageInfo
    module, _, cls = path.partition(":")
    found: type[StageInfo] = getattr(importlib.import_module(module), cls)
    return found


def parse_info(record: StageRecord) -> StageInfo:
    """A stored stage's info, typed by its kind (runs from older versions included)."""
    return info_type(record.kind).model_validate(record.info)
