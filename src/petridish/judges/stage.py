"""The judge stage of an assay: every response of one sampling stage, under each rubric.

Its key holds the sampling stage's key, the judge's id and the rubric versions; judgments
themselves live in the store's cache, so a killed stage resumes and nothing is judged twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from petridish.judges.base import Item, Judge
from petridish.judges.cache import judge_cached
from petridish.judges.rubrics import Rubric
from petridish.progress import console, progress_bar
from petridish.store.db import JudgmentCache, Response, Store
from petridish.store.keys import stage_key
from petridish.store.run import Run

VERSION = 1


def run_judge_stage(run: Run, assay: str, subject: str, sample_key: str, judge: Judge,
                    rubrics: list[Rubric], show_progress: bool,
                    extra: dict[str, object] | None = None) -> dict[str, object]:
    """Judge one sampling stage's responses; returns the stage info (what reads it needs).

    `extra` (e.g. an intervention's layer and scale) is kept in the info for reports."""
    key = stage_key("judge", VERSION, {
        "sample": sample_key, "judge": judge.id, "rubrics": {r.name: r.version for r in rubrics},
    })
    name = f"judge:{assay}:{subject}"
    record = run.store.stage(key)
    if record and record.status == "done":
        console.print(f"[dim]{name}: stored, skipped[/dim]")
        return record.info
    info: dict[str, object] = {
        "assay": assay, "subject": subject, "sample_stage": sample_key, "judge": judge.id,
        "rubrics": {r.name: r.version for r in rubrics}, **({"condition": extra} if extra else {})}
    run.store.begin_stage(key, name, "judge", info)
    responses = run.store.responses(sample_key)
    items = [Item(r.question, r.answer) for r in responses]
    with progress_bar(name, len(items) * len(rubrics), show_progress) as advance:
        out = judge_cached(judge, items, rubrics, run.store, advance)
    unscored = {k: sum(not j.scored for j in js) for k, js in out.items()}
    info = {**info, "responses": len(items), "unscored": unscored}
    run.store.finish_stage(key, info)
    return info


@dataclass(frozen=True)
class Judged:
    """A response with its scores by rubric (None when unscored) and why not."""

    response: Response
    scores: dict[str, float | None]
    reasons: dict[str, str]


def judged_responses(store: Store, judge_stage_info: dict[str, object]) -> list[Judged]:
    """A finished judge stage's responses joined with their cached judgments."""
    responses = store.responses(str(judge_stage_info["sample_stage"]))
    judge = str(judge_stage_info["judge"])
    versions = dict(judge_stage_info["rubrics"])  # type: ignore[call-overload]
    cache = JudgmentCache(store)
    digests = [Item(r.question, r.answer).digest() for r in responses]
    found = {name: cache.get(judge, name, int(v), sorted(set(digests)))
             for name, v in versions.items()}
    out = []
    for r, d in zip(responses, digests, strict=True):
        scores: dict[str, float | None] = {}
        reasons: dict[str, str] = {}
        for name in versions:
            row = found[name].get(d)
            scores[name] = row[0] if row else None
            if not row or row[0] is None:
                reasons[name] = (row[1] if row else None) or "not judged (transient failure)"
        out.append(Judged(r, scores, reasons))
    return out

