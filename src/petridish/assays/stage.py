"""The sampling stage of any assay kind on one subject, optionally under an intervention: the
kind's sources and config, the subject's fingerprint, device, dtype and seed make its key."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from petridish.assays.base import AssayConfig, AssayStage, SampleInfo
from petridish.assays.registry import get_assay
from petridish.interp.intervention import Intervention
from petridish.models.backend import SubjectBackend
from petridish.models.device import cpu_has_bf16, pick_dtype
from petridish.models.loader import LoadedModel
from petridish.models.subject import Subject
from petridish.store.run import Run
from petridish.store.stage import Done, run_stage


def run_assay_stage(
    run: Run, cfg: AssayConfig, subject: Subject, base_dir: Path, device: torch.device,
    dtype: str, seed: int, show_progress: bool, intervention: Intervention | None = None,
    loaded: dict[tuple[str, str], LoadedModel] | None = None,
    backend_factory: Callable[[], SubjectBackend] | None = None,
    peers: Mapping[str, Subject] | None = None,
) -> Done[SampleInfo]:
    """Sample one assay on one subject: skipped if stored, else resumed. `loaded` keeps models
    between stages (interventions remove their hooks, so a model can be reused)."""
    kind = get_assay(cfg.kind)
    if dtype == "bf16" and device.type == "cpu" and not cpu_has_bf16():
        dtype = "fp32"  # bf16 without native support is slower, not faster
    seed = seed if cfg.seed is None else cfg.seed
    sources = kind.sources(cfg, base_dir)
    name = f"sample:{cfg.name}:{subject.name}"
    begin = SampleInfo(assay=cfg.name, subject=subject.name, kind=cfg.kind,
                       condition=intervention.info if intervention else None)
    inputs = {
        "model": subject.fingerprint, "device": device.type,
        "dtype": str(pick_dtype(device, dtype)), "seed": seed,
        "sampling": cfg.model_dump(exclude={"name", "subjects", "dtype", "seed"}),
        "questions": [(s.name, s.fingerprint()) for s in sources],
        **({"intervention": intervention.key} if intervention else {}),
        **({"peers": {n: p.fingerprint for n, p in sorted(peers.items())}} if peers else {}),
    }

    def work(key: str) -> SampleInfo:
        stage = AssayStage(run, key, name, cfg, subject, sources, seed, device, dtype,
                           show_progress, intervention, loaded if loaded is not None else {},
                           backend_factory, base_dir, dict(peers or {}))
        try:
            kind.run(stage)
        finally:
            stage.close()
        return begin.model_copy(update={"responses": run.store.count_responses(key),
                                        "failed": run.store.count_failed(key)})

    return run_stage(run, "sample", name, kind.version, inputs, begin, work,
                     complete=lambda info: info.failed == 0)  # failed rows are retried
