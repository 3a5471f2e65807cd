"""Run an experiment: validate everything first, then each stage unless its key is stored."""

from __future__ import annotations

from pathlib import Path

from petridish.assays import freeform
from petridish.config import Experiment, load_experiment
from petridish.errors import PetridishError
from petridish.interp.conditions import ablate_conditions, steer_conditions
from petridish.interp.preflight import check_interventions
from petridish.interp.stage import JudgedAssay, run_direction_stage
from petridish.judges.base import Judge, make_judge
from petridish.judges.rubrics import load_rubrics
from petridish.judges.stage import run_judge_stage
from petridish.models.device import pick_device
from petridish.models.loader import LoadedModel, check_available
from petridish.models.refs import parse_model_ref
from petridish.store.keys import model_fingerprint
from petridish.store.run import Run, check_writable, run_dir_for
from petridish.train.organism import Subject
from petridish.train.stage import run_train_stage


def _direction_subject(exp: Experiment, name: str) -> str:
    cfg = next(d for d in exp.direction if d.name == name)
    return cfg.contrast[0] if cfg.contrast else cfg.subject


def _judge(exp: Experiment, base_dir: Path) -> Judge:
    """The experiment's judge, loaded before anything is written; never a subject under test."""
    spec = exp.judge.backend
    if spec.startswith("hf:"):
        judge_ref = parse_model_ref(spec.removeprefix("hf:"), base_dir=base_dir)
        for name, text in exp.subjects.items():
            ref = parse_model_ref(text, base_dir=base_dir)
            if ref.is_local and model_fingerprint(ref) == model_fingerprint(judge_ref):
                raise PetridishError(f"the judge {spec} is the subject {name!r}: never judge "
                                     "with the model under test", field="judge.backend")
    elif spec in exp.subjects.values():
        raise PetridishError(f"the judge {spec} is a subject: never judge with the model under "
                             "test", field="judge.backend")
    return make_judge(spec, exp.judge.settings())


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
    torch_device = pick_device(device or exp.device)
    for ref_text in exp.subjects.values():
        check_available(parse_model_ref(ref_text, base_dir=path.parent))
    judge = _judge(exp, path.parent) if exp.assay or exp.steer or exp.ablate else None
    check_interventions(exp, path.parent)
    folder = run_dir_for(runs_dir, exp)
    run = Run(folder, exp, path.read_text(encoding="utf-8"))
    status = "failed"
    try:
        subjects: dict[str, Subject] = {}
        for name, text in exp.subjects.items():
            ref = parse_model_ref(text, base_dir=path.parent)
            subjects[name] = Subject(name, ref, model_fingerprint(ref))
        for cfg in exp.train:
            init = subjects[cfg.init_from] if cfg.init_from else None
            subjects[cfg.name] = run_train_stage(run, cfg, subjects[cfg.subject], init,
                                                 path.parent, torch_device, show_progress)
        rubrics = load_rubrics(exp.judge.rubrics)
        judged: dict[tuple[str, str], JudgedAssay] = {}
        for assay in exp.assay:
            sets = freeform.question_sets(assay, path.parent)
            for name in assay.subjects or exp.subject_names():
                key = freeform.run_stage(run, assay, subjects[name], sets, torch_device,
                                         dtype or assay.dtype, show_progress)
                if judge is not None:
                    info = run_judge_stage(run, assay.name, name, key, judge, rubrics,
                                           show_progress)
                    judged[(assay.name, name)] = JudgedAssay(key, info)
        directions = {cfg.name: run_direction_stage(run, cfg, subjects, judged,
                                                    str(torch_device))
                      for cfg in exp.direction}
        conditions = [c for cfg in exp.steer
                      for c in steer_conditions(cfg, directions[cfg.direction])]
        conditions += [c for cfg in exp.ablate for c in ablate_conditions(
            cfg, directions[cfg.direction], _direction_subject(exp, cfg.direction))]
        loaded: dict[tuple[str, str], LoadedModel] = {}  # one load per subject, not per condition
        for c in conditions:
            sets = freeform.question_sets(c.assay, path.parent)
            key = freeform.run_stage(run, c.assay, subjects[c.subject], sets, torch_device,
                                     dtype or c.assay.dtype, show_progress, c.intervention,
                                     loaded)
            if judge is not None:
                run_judge_stage(run, c.assay.name, c.subject, key, judge, rubrics,
                                show_progress, extra=c.info)
        status = "done"
        if judge is not None:
            from petridish.report.html import build_report

            build_report(folder)
    finally:
        run.close(status)
    return folder
