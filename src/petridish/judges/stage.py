"""The judge stage of an assay: every response of one sampling stage, under each rubric.

Its key holds the sampling stage's key, the judge's id and the rubric versions; judgments
themselves live in the store's cache, so a killed stage resumes and nothing is judged twice.
Each rubric sees the transcript as it declares (the last reply, or the whole conversation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field

from petridish.errors import PetridishError
from petridish.judges.base import Item, Judge
from petridish.judges.cache import judge_cached
from petridish.judges.rubrics import Rubric, load_rubric
from petridish.progress import progress_bar
from petridish.store.db import JudgmentCache, Store
from petridish.store.records import Response
from petridish.store.run import Run
from petridish.store.stage import Done, StageInfo, run_stage

VERSION = 1


class JudgeInfo(StageInfo):
    """Which sampling stage was judged, by whom, under which rubric versions."""

    assay: str
    subject: str
    sample_stage: str
    judge: str
    rubrics: dict[str, int]
    responses: int = 0
    unscored: dict[str, int] = Field(default_factory=dict)
    condition: dict[str, Any] | None = None  # runs made before transcripts kept it here

    def result(self) -> str:
        return f"{self.responses} answers judged, {sum(self.unscored.values())} unscored"


def run_judge_stage(run: Run, assay: str, subject: str, sample_key: str, judge: Judge,
                    rubrics: list[Rubric], show_progress: bool) -> Done[JudgeInfo]:
    """Judge one sampling stage's responses under every rubric."""
    versions = {r.name: r.version for r in rubrics}
    begin = JudgeInfo(assay=assay, subject=subject, sample_stage=sample_key, judge=judge.id,
                      rubrics=versions)
    name = f"judge:{assay}:{subject}"

    def work(key: str) -> JudgeInfo:
        responses = [r for r in run.store.responses(sample_key) if r.failed is None]
        unscored: dict[str, int] = {}
        by_sight: dict[str, list[Rubric]] = {}
        for r in rubrics:
            by_sight.setdefault(r.sees, []).append(r)
        with progress_bar(name, len(responses) * len(rubrics), show_progress) as advance:
            for sees, group in by_sight.items():
                items = [Item.of(r.messages, sees) for r in responses]
                out = judge_cached(judge, items, group, run.store, advance)
                unscored.update({k: sum(not j.scored for j in js) for k, js in out.items()})
        return begin.model_copy(update={"responses": len(responses),
                                        "unscored": {r.name: unscored[r.name] for r in rubrics}})

    answered = run.store.count_responses(sample_key) - run.store.count_failed(sample_key)
    return run_stage(run, "judge", name, VERSION, {
        "sample": sample_key, "judge": judge.id, "rubrics": versions}, begin, work,
        complete=lambda info: info.responses == answered)  # retried rows get judged too


@dataclass(frozen=True)
class Judged:
    """A response with its scores by rubric (None when unscored) and why not."""

    response: Response
    scores: dict[str, float | None]
    reasons: dict[str, str]


def judged_responses(store: Store, info: JudgeInfo) -> list[Judged]:
    """A finished judge stage's responses joined with their cached judgments."""
    responses = [r for r in store.responses(info.sample_stage) if r.failed is None]
    cache = JudgmentCache(store)
    digests: dict[str, list[str]] = {}
    found = {}
    for name, version in info.rubrics.items():
        sees = _sees(name)
        if sees not in digests:
            digests[sees] = [Item.of(r.messages, sees).digest() for r in responses]
        found[name] = cache.get(info.judge, name, int(version), sorted(set(digests[sees])))
    out = []
    for i, r in enumerate(responses):
        scores: dict[str, float | None] = {}
        reasons: dict[str, str] = {}
        for name in info.rubrics:
            row = found[name].get(digests[_sees(name)][i])
            scores[name] = row[0] if row else None
            if not row or row[0] is None:
                reasons[name] = (row[1] if row else None) or "not judged (transient failure)"
        out.append(Judged(r, scores, reasons))
    return out


def _sees(rubric: str) -> str:
    try:
        return load_rubric(rubric).sees
    except PetridishError:  # a rubric this version no longer ships: its stored scores are by reply
        return "last_reply"
