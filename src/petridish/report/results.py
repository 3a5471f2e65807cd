"""A run read back: every finished assay stage with its responses, judgments and condition,
and the metric rows its kind computes from them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from petridish.assays.base import AssayResult, By, MetricRow, SampleInfo
from petridish.assays.registry import kinds
from petridish.interp.intervention import ConditionInfo
from petridish.judges.stage import JudgeInfo, judged_responses
from petridish.report.summary import open_store
from petridish.store.stage import parse_info

_CONDITION: TypeAdapter[Any] = TypeAdapter(ConditionInfo)


def load_results(folder: Path) -> list[AssayResult]:
    """Finished sampling stages in the order they ran, joined with their judge stage; of
    several stages of one (assay, subject), e.g. before and after a code version changed the
    stage's key, the last one run."""
    store = open_store(folder)
    try:
        stages = [s for s in store.stages() if s.status == "done"]
        judges = {}
        for s in stages:
            info = parse_info(s)
            if isinstance(info, JudgeInfo):
                judges[info.sample_stage] = info
        latest: dict[tuple[str, str], str] = {}  # a stage a newer version superseded is
        for s in stages:                          # not this run's result any more
            info = parse_info(s)
            if isinstance(info, SampleInfo):
                latest[(info.assay, info.subject)] = s.key
        out = []
        for s in stages:
            info = parse_info(s)
            if not isinstance(info, SampleInfo) or latest[(info.assay, info.subject)] != s.key:
                continue
            j = judges.get(s.key)
            condition = info.condition
            if condition is None and j is not None and j.condition:  # a run from before 0.2
                condition = _CONDITION.validate_python(j.condition)
            out.append(AssayResult(info.assay, info.kind, info.subject, s.key, info,
                                   store.responses(s.key), j.judge if j else None,
                                   judged_responses(store, j) if j else None, condition))
        return out
    finally:
        store.close()


def by_kind(results: Sequence[AssayResult]) -> dict[str, list[AssayResult]]:
    """Results grouped by assay kind, for the kinds this version knows."""
    known = kinds()
    groups: dict[str, list[AssayResult]] = defaultdict(list)
    for r in results:
        if r.kind in known:
            groups[r.kind].append(r)
    return dict(groups)


def metric_rows(results: Sequence[AssayResult], by: By = "subject") -> list[MetricRow]:
    known = kinds()
    return [row for kind, rs in by_kind(results).items()
            for row in known[kind].metrics(rs, by)]


def run_json(folder: Path, by: str = "subject") -> dict[str, object]:
    """The run as one object: its stages, every metric as a row, and each judge's validation."""
    from petridish.judges.captions import judge_caption
    from petridish.report.summary import stage_rows

    results = load_results(folder)
    judges = sorted({r.judge for r in results if r.judge})
    return {"run": folder.name, "stages": stage_rows(folder),
            "metrics": [m.as_dict() for m in metric_rows(results, by)],  # type: ignore[arg-type]
            "judges": {j: judge_caption(j) for j in judges}}
