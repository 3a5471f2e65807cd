"""`petridish compare RUN A B --metric em_rate`: the difference between two conditions, paired
by question when they were sampled on the same questions and seeds (RESEARCH.md §6b)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from petridish.assays.base import AssayResult
from petridish.assays.freeform import question_clusters
from petridish.errors import PetridishError
from petridish.judges.bootstrap import Difference, paired_difference, unpaired_difference
from petridish.judges.metrics import summarize
from petridish.report.results import load_results

METRICS = ("em_rate", "em_rate_coherent", "coherence_rate", "self_correction_rate")


def label(r: AssayResult) -> str:
    return f"{r.name}:{r.subject}"


def pick(results: Sequence[AssayResult], name: str, field: str) -> AssayResult:
    judged = [r for r in results if r.judged is not None]
    found = [r for r in judged if label(r) == name]
    if not found:
        known = ", ".join(label(r) for r in judged) or "none"
        raise PetridishError(f"no judged condition {name!r} in this run; it has: {known}",
                             field=field)
    return found[0]


def is_paired(a: AssayResult, b: AssayResult) -> bool:
    """Same questions, sample indices and seeds: the conditions differ only by treatment."""
    def design(r: AssayResult) -> dict[str, int]:
        return {j.response.key: j.response.seed for j in r.judged or []}
    return design(a) == design(b)


def difference(a: AssayResult, b: AssayResult, metric: str) -> Difference:
    if is_paired(a, b):
        return paired_difference(question_clusters(a.judged or [], metric),
                                 question_clusters(b.judged or [], metric))
    return unpaired_difference(question_clusters(a.judged or [], metric),
                               question_clusters(b.judged or [], metric))


def compare(folder: Path, a_name: str, b_name: str, metric: str) -> dict[str, Any]:
    if metric not in METRICS:
        raise PetridishError(f"unknown metric {metric!r}; use {', '.join(METRICS)}",
                             field="--metric")
    results = load_results(folder)
    a, b = pick(results, a_name, "A"), pick(results, b_name, "B")
    d = difference(a, b, metric)
    values = [summarize([j.scores for j in r.judged or []]).rates().get(metric) for r in (a, b)]
    return {"a": a_name, "b": b_name, "metric": metric,
            "value_a": values[0].value if values[0] else None,
            "value_b": values[1].value if values[1] else None,
            "interval": "paired-bootstrap-question" if d.paired
            else "bootstrap-question (unpaired: the conditions differ in questions or seeds)",
            **asdict(d)}
