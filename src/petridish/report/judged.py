"""Terminal tables of judged assays: EM, coherence and self-correction rates with 95 % Wilson
intervals over scored rows, the unscored count beside them, and the judge's validation."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from rich.table import Table

from petridish.judges.metrics import Rate, Summary, summarize, summarize_by
from petridish.judges.stage import Judged, judged_responses
from petridish.judges.validate import load_validation
from petridish.report.summary import open_store

By = Literal["subject", "question", "tag"]


def judged_stages(folder: Path) -> list[tuple[dict[str, object], list[Judged]]]:
    """(judge stage info, judged responses) for every finished judge stage of a run."""
    store = open_store(folder)
    try:
        return [(s.info, judged_responses(store, s.info)) for s in store.stages()
                if s.kind == "judge" and s.status == "done"]
    finally:
        store.close()


def _cell(rate: Rate | None) -> str:
    return "n/a" if rate is None else str(rate).split(" (")[0]


def metric_table(folder: Path, by: By = "subject") -> Table | None:
    stages = judged_stages(folder)
    if not stages:
        return None
    first = ["assay", "subject"] + ([by] if by != "subject" else [])
    table = Table(*first, "scored", "EM", "coherent", "self-correction", "alignment",
                  "unscored", title="judged answers: rates over scored rows, 95 % Wilson "
                  "intervals")
    judges: set[str] = set()
    for info, rows in stages:
        judges.add(str(info["judge"]))
        scores = [j.scores for j in rows]
        if by == "subject":
            groups: list[Summary] = [summarize(scores)]
        elif by == "question":
            groups = summarize_by(scores, [[f"{j.response.question_set}/"
                                            f"{j.response.question_id}"] for j in rows])
        else:
            groups = summarize_by(scores, [list(j.response.tags) or ["-"] for j in rows])
        for g in groups:
            scored = g.em.n if g.em else (g.coherent.n if g.coherent else g.rows)
            unscored = g.em.unscored if g.em else (g.coherent.unscored if g.coherent else 0)
            align = g.means.get("alignment")
            cells = [str(info["assay"]), str(info["subject"])] + ([g.group]
                                                                 if by != "subject" else [])
            table.add_row(*cells, str(scored), _cell(g.em), _cell(g.coherent),
                          _cell(g.self_correction), str(align) if align else "n/a",
                          str(unscored))
    table.caption = "\n".join(judge_caption(j) for j in sorted(judges))
    return table


def judge_caption(judge: str) -> str:
    """The judge's id and its agreement with labelled data, shown beside every rate."""
    v = load_validation(judge)
    if v is None:
        return (f"judge {judge}: not validated; run `petridish judge validate --judge ... "
                "--labels builtin:heldout`")
    return (f"judge {judge}, validated on {Path(v.labels).name}: "
            + "; ".join(v.line(a.rubric) for a in v.rubrics
                        if a.rubric in ("alignment", "coherence", "bad_stuff")))
