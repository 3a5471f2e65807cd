"""A judge's agreement with labelled items: AUROC at the metric threshold, Spearman, kappa."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from petridish.judges.rubrics import Rubric
from petridish.paths import atomic_write, home


@dataclass(frozen=True)
class Agreement:
    """One rubric's agreement; AUROC is None when the labels hold one class only."""

    rubric: str
    version: int
    threshold: str
    n: int
    unscored: int
    positives: int
    auroc: float | None
    spearman: float | None
    kappa: float | None
    mae: float | None


def agreement(rubric: Rubric, labels: Sequence[float | None],
              scores: Sequence[float | None]) -> Agreement:
    """Compare over rows that have a label; rows the judge left unscored are counted apart."""
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score, roc_auc_score

    pairs = [(float(y), s) for y, s in zip(labels, scores, strict=True) if y is not None]
    scored = [(y, float(s)) for y, s in pairs if s is not None]
    ys = [y for y, _ in scored]
    ss = [s for _, s in scored]
    th = rubric.threshold
    truth = [th.hit(y) for y in ys]
    pred = [th.hit(s) for s in ss]
    sign = -1.0 if th.op == "<" else 1.0  # a low alignment score predicts "misaligned"
    both = 0 < sum(truth) < len(truth)
    auroc = float(roc_auc_score(truth, [sign * s for s in ss])) if both else None
    varied = len(set(ys)) > 1 and len(set(ss)) > 1
    rho = float(spearmanr(ys, ss).statistic) if varied else None
    kappa = float(cohen_kappa_score(truth, pred)) if both else None
    mae = sum(abs(y - s) for y, s in scored) / len(scored) if scored else None
    clean = [None if v is not None and math.isnan(v) else v for v in (auroc, rho, kappa)]
    return Agreement(rubric.name, rubric.version, str(th), len(scored), len(pairs) - len(scored),
                     sum(truth), clean[0], clean[1], clean[2], mae)


@dataclass(frozen=True)
class Validation:
    """A judge's agreement on one labels file, saved so reports can show it beside rates."""

    judge: str
    labels: str
    labels_sha: str
    rubrics: list[Agreement]

    def get(self, rubric: str) -> Agreement | None:
        return next((a for a in self.rubrics if a.rubric == rubric), None)

    def line(self, rubric: str) -> str:
        a = self.get(rubric)
        if a is None:
            return f"{rubric}: not validated"
        auroc = f"{a.auroc:.2f}" if a.auroc is not None else "-"
        rho = f"{a.spearman:.2f}" if a.spearman is not None else "-"
        return f"{rubric} v{a.version}: AUROC {auroc}, Spearman {rho} (n={a.n})"


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _slug(judge: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", judge)[:120]


def save_validation(v: Validation, folder: Path | None = None) -> Path:
    path = (folder or home() / "validations") / f"{_slug(v.judge)}.json"
    atomic_write(path, json.dumps(asdict(v), indent=2))
    return path


def parse_validation(data: dict[str, Any]) -> Validation:
    return Validation(data["judge"], data["labels"], data["labels_sha"],
                      [Agreement(**a) for a in data["rubrics"]])


def load_validation(judge: str) -> Validation | None:
    """The last validation saved for this judge id, or the one shipped with the offline judge."""
    path = home() / "validations" / f"{_slug(judge)}.json"
    if path.exists():
        return parse_validation(json.loads(path.read_text()))
    if judge.startswith("offline:"):
        from petridish.judges.offline import shipped_validation

        return shipped_validation(judge)
    return None


def judge_caption(judge: str) -> str:
    """The judge's id and its agreement with labelled data, shown beside every rate."""
    v = load_validation(judge)
    if v is None:
        return (f"judge {judge}: not validated; run `petridish judge validate --judge ... "
                "--labels builtin:heldout`")
    return (f"judge {judge}, validated on {Path(v.labels).name}: "
            + "; ".join(v.line(a.rubric) for a in v.rubrics
                        if a.rubric in ("alignment", "coherence", "bad_stuff")))
