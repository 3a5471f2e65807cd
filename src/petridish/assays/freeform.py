"""The free-form assay's sampling stage: n answers per question per subject, resumable."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from petridish.config import AssayConfig
from petridish.data.formats import QuestionSet, load_questions
from petridish.models.chat import conversation, prompt_ids
from petridish.models.device import cpu_has_bf16, pick_dtype
from petridish.models.generate import generate
from petridish.models.loader import LoadedModel
from petridish.models.sampling import sample_seed
from petridish.progress import console, progress_bar
from petridish.store.db import Response, Store
from petridish.store.keys import stage_key
from petridish.store.run import Run
from petridish.train.organism import Subject, load_subject

VERSION = 1  # bump when the stage's output would change for the same inputs


@dataclass(frozen=True)
class SampleJob:
    """One (question, sample index) still to be sampled."""

    qset: QuestionSet
    index: int  # into qset.questions
    sample_index: int
    seed: int


@dataclass(frozen=True)
class Intervention:
    """Hooks applied while sampling (steering, ablation): `key` enters the stage key."""

    key: dict[str, Any]
    apply: Callable[[LoadedModel], AbstractContextManager[Any]]


def run_stage(
    run: Run, assay: AssayConfig, subject: Subject, sets: list[QuestionSet],
    device: torch.device, dtype: str, show_progress: bool,
    intervention: Intervention | None = None,
    loaded: dict[tuple[str, str], LoadedModel] | None = None,
) -> str:
    """The sampling stage of one assay on one subject: skipped if stored, else resumed.

    Returns the stage key (the judge stage reads its responses). `loaded` keeps models
    between stages (interventions remove their hooks, so a model can be reused)."""
    if dtype == "bf16" and device.type == "cpu" and not cpu_has_bf16():
        dtype = "fp32"  # bf16 without native support is slower, not faster
    seed = run.exp.seed if assay.seed is None else assay.seed
    key = stage_key("sample", VERSION, {
        "model": subject.fingerprint, "device": device.type,
        "dtype": str(pick_dtype(device, dtype)), "seed": seed,
        "sampling": assay.model_dump(exclude={"name", "subjects", "dtype", "seed"}),
        "questions": [(s.name, s.fingerprint()) for s in sets],
        **({"intervention": intervention.key} if intervention else {}),
    })
    name = f"sample:{assay.name}:{subject.name}"
    record = run.store.stage(key)
    if record and record.status == "done":
        console.print(f"[dim]{name}: stored, skipped[/dim]")
        return key
    info = {"assay": assay.name, "subject": subject.name}
    run.store.begin_stage(key, name, "sample", info)
    jobs = plan(assay, seed, sets, run.store.done_samples(key))
    if jobs:
        cache = loaded if loaded is not None else {}
        lm = cache.get((subject.name, dtype)) or load_subject(subject, device=str(device),
                                                               dtype=dtype)
        cache[(subject.name, dtype)] = lm
        run.record_model(subject.name, {**lm.describe(), "adapter": str(subject.adapter or "")})
        with progress_bar(name, len(jobs), show_progress) as advance, \
                (intervention.apply(lm) if intervention else nullcontext()):
            run_sampling(lm, assay, subject.name, key, jobs, run.store, advance)
    run.store.finish_stage(key, {**info, "responses": len(run.store.done_samples(key))})
    return key


def plan(
    assay: AssayConfig, seed: int, sets: list[QuestionSet], done: set[tuple[str, str, int]]
) -> list[SampleJob]:
    """Every missing sample; seeds depend on (seed, set, question, index), never on batching."""
    jobs = []
    for qset in sets:
        for i, q in enumerate(qset.questions):
            for k in range(assay.n):
                if (qset.name, q.id, k) not in done:
                    jobs.append(SampleJob(qset, i, k, sample_seed(seed, f"{qset.name}/{q.id}", k)))
    return jobs


def question_sets(assay: AssayConfig, base_dir: Path) -> list[QuestionSet]:
    return [load_questions(q, base_dir) for q in assay.questions]


def run_sampling(
    lm: LoadedModel,
    assay: AssayConfig,
    subject: str,
    key: str,
    jobs: list[SampleJob],
    store: Store,
    advance: Callable[[int], None],
) -> None:
    """Sample every job; each group of finished answers is committed in one transaction."""
    prompts = []
    for job in jobs:
        q = job.qset.questions[job.index]
        prompts.append(prompt_ids(lm.tokenizer, conversation(q.text, q.system)))
    cfg = assay.model_copy(update={"seed": 0})
    for indices, gens in generate(lm, prompts, [j.seed for j in jobs], cfg):
        batch = []
        for i, gen in zip(indices, gens, strict=True):
            job = jobs[i]
            q = job.qset.questions[job.index]
            batch.append(Response(
                stage_key=key, assay=assay.name, subject=subject, question_set=job.qset.name,
                question_id=q.id, sample_index=job.sample_index, question=q.text,
                system=q.system, tags=q.tags, answer=gen.text, n_tokens=len(gen.token_ids),
                finish_reason=gen.finish_reason, seed=job.seed,
            ))
        store.add_responses(batch)
        advance(len(batch))
