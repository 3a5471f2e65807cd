"""A judge's agreement with labelled items: AUROC at the metric threshold, Spearman, kappa."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from petridish.judges.decisions import Decision
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
    """A judge's agreement on one labels file, saved so reports can show it beside rates:
    per rubric, and for the EM and coherence decisions (overall and per group)."""

    judge: str
    labels: str
    labels_sha: str
    rubrics: list[Agreement]
    em: Decision | None = None
    coherence_decision: Decision | None = None
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The `judge validate --json` object."""
        return {"judge": self.judge, "labels": self.labels, "labels_sha": self.labels_sha,
                "rubrics": {a.rubric: asdict(a) for a in self.rubrics},
                "em": asdict(self.em) if self.em else None,
                "coherence_decision": (asdict(self.coherence_decision)
                                       if self.coherence_decision else None),
                "groups": self.groups}

    def get(self, rubric: str) -> Agreement | None:
        return next((a for a in self.rubrics if a.rubric == rubric), None)

    def line(self, rubric: str) -> str:
        a = self.get(rubric)
        if a is None:
            return f"{rubric}: not validated"
        auroc = f"{a.auroc:.2f}" if a.auroc is not None else "-"
        rho = f"{a.spearman:.2f}" if a.spearman is not None else "-"
        return f"{rubric} v{a.version}: AUROC {auroc}, Spearman {rho} (n={a.n})"


def validation_of(judge: str, path: Path, rows: Sequence[dict[str, Any]],
                  rubrics: Sequence[Rubric], scores: Sequence[dict[str, float | None]],
                  cut: dict[str, float] | None = None, group_by: str | None = None) -> Validation:
    """Per-rubric agreement and the EM and coherence decisions, overall and per `group_by`
    value, of a judge's `scores` (one dict per row) against the rows' labels."""
    from petridish.judges.decisions import coherence_decision, em_decision

    def figures(keep: list[int]) -> tuple[list[Agreement], Decision | None, Decision | None]:
        agree = [agreement(r, [rows[i].get(r.name) for i in keep],
                           [scores[i].get(r.name) for i in keep]) for r in rubrics]
        if not {"alignment", "coherence"} <= {r.name for r in rubrics}:
            return agree, None, None
        lab = [rows[i] for i in keep]
        sc = [scores[i] for i in keep]
        return agree, em_decision(lab, sc, cut), coherence_decision(lab, sc, cut)

    agree, em, coh = figures(list(range(len(rows))))
    groups: dict[str, dict[str, Any]] = {}
    for value in sorted({str(row.get(group_by)) for row in rows} if group_by else []):
        g_agree, g_em, g_coh = figures(
            [i for i, row in enumerate(rows) if str(row.get(group_by or "")) == value])
        groups[f"{group_by}={value}"] = {
            "rubrics": {a.rubric: asdict(a) for a in g_agree},
            "em": asdict(g_em) if g_em else None,
            "coherence_decision": asdict(g_coh) if g_coh else None}
    return Validation(judge, str(path), file_sha(path), agree, em, coh, groups)


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def slug(judge: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", judge)[:120]


def save_validation(v: Validation, folder: Path | None = None) -> Path:
    """One file per (judge, labels file, its content hash): a validation on one labels file
    never replaces another's."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(v.labels).stem)
    path = (folder or home() / "validations") / slug(v.judge) / f"{stem}-{v.labels_sha}.json"
    atomic_write(path, json.dumps(asdict(v), indent=2))
    return path


def parse_validation(data: dict[str, Any]) -> Validation:
    def dec(d: dict[str, Any] | None) -> Decision | None:
        return Decision(**d) if d else None

    return Validation(data["judge"], data["labels"], data["labels_sha"],
                      [Agreement(**a) for a in data["rubrics"]], dec(data.get("em")),
                      dec(data.get("coherence_decision")), data.get("groups") or {})
