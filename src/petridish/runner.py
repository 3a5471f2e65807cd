"""Run an experiment: validate everything first, then each stage unless its key is stored."""

from __future__ import annotations

from pathlib import Path

from petridish.assays import freeform
from petridish.config import Experiment, load_experiment
from petridish.models.device import pick_device
from petridish.models.loader import check_available
from petridish.models.refs import parse_model_ref
from petridish.store.keys import model_fingerprint
from petridish.store.run import Run, check_writable, run_dir_for
from petridish.train.organism import Subject
from petridish.train.stage import run_train_stage


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
        for assay in exp.assay:
            sets = freeform.question_sets(assay, path.parent)
            for name in assay.subjects or exp.subject_names():
                freeform.run_stage(run, assay, subjects[name], sets, torch_device,
                                   dtype or assay.dtype, show_progress)
        status = "done"
    finally:
        run.close(status)
    return folder
