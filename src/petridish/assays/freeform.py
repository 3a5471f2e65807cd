"""The free-form assay's sampling stage: n answers per question per subject, resumable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from petridish.config import AssayConfig, Experiment
from petridish.data.formats import QuestionSet, load_questions
from petridish.models.chat import conversation, prompt_ids
from petridish.models.generate import generate
from petridish.models.loader import LoadedModel
from petridish.models.sampling import sample_seed
from petridish.store.db import Response, Store

VERSION = 1  # bump when the stage's output would change for the same inputs


@dataclass(frozen=True)
class SampleJob:
    """One (question, sample index) still to be sampled."""

    qset: QuestionSet
    index: int  # into qset.questions
    sample_index: int
    seed: int


def plan(
    assay: AssayConfig, exp: Experiment, sets: list[QuestionSet], done: set[tuple[str, str, int]]
) -> list[SampleJob]:
    """Every missing sample; seeds depend on (seed, set, question, index), never on batching."""
    seed = exp.seed if assay.seed is None else assay.seed
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
    """Sample every job; each finished batch is committed in one transaction."""
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
