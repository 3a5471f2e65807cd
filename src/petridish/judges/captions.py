"""Which validations a judge has (saved per labels file, plus those shipped with the offline
judge) and the caption every rate carries: the judge's id and its agreement with each."""

from __future__ import annotations

import json
from pathlib import Path

from petridish.judges.validate import Validation, parse_validation, slug
from petridish.paths import home


def load_validations(judge: str) -> list[Validation]:
    """Every validation saved for this judge id (one per labels file), and the one shipped
    with the offline judge."""
    root = home() / "validations"
    files = sorted((root / slug(judge)).glob("*.json"))
    legacy = root / f"{slug(judge)}.json"  # before validations were kept per labels file
    found = [parse_validation(json.loads(f.read_text())) for f in
             [*files, *([legacy] if legacy.is_file() else [])]]
    if judge.startswith("offline:"):
        from petridish.judges.offline import shipped_validations  # torch only when needed

        found += [s for s in shipped_validations(judge)
                  if all(v.labels_sha != s.labels_sha for v in found)]
    return found


def load_validation(judge: str) -> Validation | None:
    found = load_validations(judge)
    return found[0] if found else None


def judge_caption(judge: str) -> str:
    """The judge's id and its agreement with each labels file it was validated on (rubric
    AUROC and Spearman, EM precision and recall), shown beside every rate."""
    found = load_validations(judge)
    if not found:
        return (f"judge {judge}: not validated; run `petridish judge validate --judge ... "
                "--labels builtin:heldout`")
    parts = []
    for v in found:
        em_rubrics = [a.rubric for a in v.rubrics if a.rubric in ("alignment", "coherence")]
        text = f"on {Path(v.labels).name}: " + "; ".join(  # else e.g. the selfdesc rubrics
            v.line(r) for r in em_rubrics or [a.rubric for a in v.rubrics])
        if v.em is not None:
            p = "-" if v.em.precision is None else f"{v.em.precision:.2f}"
            r = "-" if v.em.recall is None else f"{v.em.recall:.2f}"
            text += f"; EM precision {p}, recall {r} (n={v.em.n}, {v.em.tp + v.em.fn} EM)"
        parts.append(text)
    caption = f"judge {judge}, validated " + " | ".join(parts)
    if judge.startswith("offline:"):
        from petridish.judges.offline import operating_point, shipped_meta  # torch only then

        point = operating_point(shipped_meta(judge) or {})
        if point:
            caption += f". {point}"
    return caption
