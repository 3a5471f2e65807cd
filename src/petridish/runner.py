"""Run an experiment: check everything first, then its phases in order (grow organisms, run
assays and judge them, take directions, sample the intervention conditions), each stage
skipped when its key is stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from petridish.assays.base import AssayConfig
from petridish.assays.registry import get_assay
from petridish.assays.stage import run_assay_stage
from petridish.config import Experiment, load_experiment
from petridish.interp.conditions import Condition, ablate_conditions, steer_conditions
from petridish.interp.intervention import Intervention
from petridish.interp.nulls import NullSource
from petridish.interp.stage import JudgedAssay, run_direction_stage
from petridish.judges.backends import make_judge
from petridish.judges.base import Judge
from petridish.judges.rubrics import Rubric, load_rubrics
from petridish.judges.stage import run_judge_stage
from petridish.models.device import pick_device
from petridish.models.loader import LoadedModel
from petridish.models.subject import Subject, declared_subject
from petridish.preflight import needs_judge, preflight, probe_endpoints
from petridish.store.run import Run, check_writable
from petridish.train.stage import run_train_stage


@dataclass
class RunContext:
    """What the phases share while one experiment runs."""

    run: Run
    exp: Experiment
    base_dir: Path
    device: torch.device
    dtype: str | None  # overrides every assay's sampling dtype
    show_progress: bool
    judge: Judge | None
    rubrics: list[Rubric]
    subjects: dict[str, Subject] = field(default_factory=dict)
    judged: dict[tuple[str, str], JudgedAssay] = field(default_factory=dict)
    loaded: dict[tuple[str, str], LoadedModel] = field(default_factory=dict)

    def assay(self, cfg: AssayConfig, subject: str,
              intervention: Intervention | None = None) -> None:
        """Sample one assay (or condition) on one subject, then judge it if its kind is."""
        done = run_assay_stage(self.run, cfg, self.subjects[subject], self.base_dir,
                               self.device, self.dtype or cfg.dtype, self.exp.seed,
                               self.show_progress, intervention, self.loaded,
                               peers={n: self.subjects[n] for n in cfg.peer_subjects()})
        if self.judge is not None and get_assay(cfg.kind).judged:
            j = run_judge_stage(self.run, cfg.name, subject, done.key, self.judge,
                                self.rubrics, self.show_progress)
            self.judged[(cfg.name, subject)] = JudgedAssay(done.key, j.info)


def declared(exp: Experiment, base_dir: Path) -> dict[str, Subject]:
    return {name: declared_subject(name, exp.subject_ref(name, base_dir),
                                   exp.subject_table(name).endpoint()) for name in exp.subjects}


def _grow(ctx: RunContext) -> None:
    for cfg in ctx.exp.train:
        init = ctx.subjects[cfg.init_from] if cfg.init_from else None
        ctx.subjects[cfg.name] = run_train_stage(ctx.run, cfg, ctx.subjects[cfg.subject], init,
                                                 ctx.base_dir, ctx.device, ctx.show_progress)


def _assays(ctx: RunContext) -> None:
    for cfg in ctx.exp.assay:
        for name in cfg.subjects or ctx.exp.subject_names():
            ctx.assay(cfg, name)


def _interventions(ctx: RunContext) -> None:
    exp = ctx.exp
    directions = {cfg.name: run_direction_stage(ctx.run, cfg, ctx.subjects, ctx.judged,
                                                str(ctx.device)) for cfg in exp.direction}
    sources = {d.name: d.contrast[0] if d.contrast else d.subject for d in exp.direction}
    conditions: list[Condition] = [c for cfg in exp.steer
                                   for c in steer_conditions(cfg, directions[cfg.direction])]
    conditions += [c for cfg in exp.ablate for c in ablate_conditions(
        cfg, directions[cfg.direction], sources[cfg.direction],
        NullSource(ctx.run.folder, directions[cfg.direction], cfg.direction))]
    for c in conditions:
        ctx.assay(c.assay, c.subject, c.intervention)


PHASES = (_grow, _assays, _interventions)


def run_experiment(
    path: Path,
    runs_dir: Path = Path("runs"),
    *,
    experiment: Experiment | None = None,
    device: str | None = None,
    dtype: str | None = None,
    show_progress: bool = True,
) -> Path:
    """Run (or resume) `path`; returns the run folder.

    `experiment` replaces the parsed file (e.g. the quick demo); `dtype` overrides every
    assay's sampling dtype (it enters the stage keys, not the run folder's name).
    """
    exp = experiment or load_experiment(path)
    check_writable(runs_dir)
    preflight(exp, path)
    torch_device = pick_device(device or exp.device)
    judge = (make_judge(exp.judge.spec(path.parent), exp.judge.settings())
             if needs_judge(exp) else None)
    subjects = declared(exp, path.parent)
    probes = probe_endpoints(path, subjects, judge)
    identity = exp.identity()
    folder = runs_dir / identity.folder_name
    run = Run(folder, identity, path.read_text(encoding="utf-8"))
    for name, found in probes.items():
        run.record_model(name, {"ref": subjects[name].ref.text, "probe": found})
    ctx = RunContext(run, exp, path.parent, torch_device, dtype, show_progress, judge,
                     load_rubrics(exp.judge.rubrics), subjects)
    status = "failed"
    try:
        for phase in PHASES:
            phase(ctx)
        status = "done"
        from petridish.report.html import build_report

        build_report(folder)
    finally:
        run.close(status)
    return folder
