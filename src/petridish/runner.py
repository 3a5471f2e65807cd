"""Run an experiment: validate everything first, then each stage unless its key is stored."""

from __future__ import annotations

from pathlib import Path

from petridish.assays import freeform
from petridish.config import Experiment, load_experiment
from petridish.models.device import cpu_has_bf16, pick_device, pick_dtype
from petridish.models.loader import load_model
from petridish.models.refs import parse_model_ref
from petridish.progress import console, progress_bar
from petridish.store.keys import model_fingerprint, stage_key
from petridish.store.run import Run, check_writable, run_dir_for


def run_experiment(
    path: Path,
    runs_dir: Path = Path("runs"),
    *,
    experiment: Experiment | None = None,
    device: str | None = None,
    show_progress: bool = True,
) -> Path:
    """Run (or resume) `path`; returns the run folder. `experiment` overrides the parsed file."""
    exp = experiment or load_experiment(path)
    check_writable(runs_dir)
    torch_device = pick_device(device or exp.device)
    folder = run_dir_for(runs_dir, exp)
    run = Run(folder, exp, path.read_text(encoding="utf-8"))
    status = "failed"
    try:
        for assay in exp.assay:
            sets = freeform.question_sets(assay, path.parent)
            for subject in assay.subjects or list(exp.subjects):
                ref = parse_model_ref(exp.subjects[subject], base_dir=path.parent)
                wanted = assay.dtype
                if wanted == "bf16" and torch_device.type == "cpu" and not cpu_has_bf16():
                    wanted = "fp32"  # bf16 without native support is slower, not faster
                dtype = pick_dtype(torch_device, wanted)
                key = stage_key("sample", freeform.VERSION, {
                    "model": model_fingerprint(ref), "device": torch_device.type,
                    "dtype": str(dtype), "sampling": assay.model_dump(exclude={"name", "subjects"}),
                    "seed": exp.seed, "questions": [s.fingerprint() for s in sets],
                })
                name = f"sample:{assay.name}:{subject}"
                record = run.store.stage(key)
                if record and record.status == "done":
                    console.print(f"[dim]{name}: stored, skipped[/dim]")
                    continue
                run.store.begin_stage(key, name, "sample", {"assay": assay.name,
                                                            "subject": subject})
                jobs = freeform.plan(assay, exp, sets, run.store.done_samples(key))
                if jobs:
                    lm = load_model(ref, device=str(torch_device), dtype=wanted)
                    run.record_model(subject, lm.describe())
                    with progress_bar(name, len(jobs), show_progress) as advance:
                        freeform.run_sampling(lm, assay, subject, key, jobs, run.store, advance)
                n = len(run.store.done_samples(key))
                run.store.finish_stage(key, {"assay": assay.name, "subject": subject,
                                             "responses": n})
        status = "done"
    finally:
        run.close(status)
    return folder
