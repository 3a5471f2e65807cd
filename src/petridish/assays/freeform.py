"""The free-form assay: n sampled answers per question per subject, judged afterwards by the
experiment's judge (EM, coherence, self-correction; RESEARCH.md §1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field
from rich.table import Table

from petridish import render
from petridish.assays.base import AssayConfig, AssayResult, AssayStage, By, MetricRow
from petridish.assays.registry import assay
from petridish.data.formats import QuestionSet, load_questions
from petridish.judges.bootstrap import cluster_interval
from petridish.judges.captions import judge_caption
from petridish.judges.metrics import Rate, Summary, summarize, summarize_by
from petridish.judges.stage import Judged
from petridish.models.backend import Reply
from petridish.models.chat import conversation
from petridish.models.sampling import sample_seed
from petridish.progress import console
from petridish.store.records import Response, Turn, single_turn
from petridish.tables import new_table


class FreeformConfig(AssayConfig):
    """Free-form sampling of each subject over question sets (judges come in a later stage)."""

    kind: Literal["freeform"] = Field("freeform", description="assay kind")


@dataclass(frozen=True)
class SampleJob:
    """One (question, sample index) still to be sampled."""

    qset: QuestionSet
    index: int  # into qset.questions
    sample_index: int
    seed: int


def plan(n: int, seed: int, sets: Sequence[QuestionSet], done: set[str]) -> list[SampleJob]:
    """Every missing sample; seeds depend on (seed, set, question, index), never on batching."""
    jobs = []
    for qset in sets:
        for i, q in enumerate(qset.questions):
            for k in range(n):
                if f"{qset.name}/{q.id}/{k}" not in done:
                    jobs.append(SampleJob(qset, i, k, sample_seed(seed, f"{qset.name}/{q.id}", k)))
    return jobs


def _keys(r: Response, by: By) -> list[str]:
    if by in ("subject", "tag"):
        return [f"tag={t}" for t in r.tags]
    return [f"question={r.question_set}/{r.question_id}"]


def _groups(results: Sequence[AssayResult],
            by: By) -> list[tuple[AssayResult, Summary, int, list[Judged]]]:
    """(result, summary, failed rows, judged rows) for the whole set and each group of `by`."""
    out = []
    for res in results:
        if res.judged is None:
            continue
        failed = [r for r in res.responses if r.failed is not None]
        out.append((res, summarize([j.scores for j in res.judged], "all"), len(failed),
                    res.judged))
        members: dict[str, list[Judged]] = {}
        for j in res.judged:
            for k in _keys(j.response, by):
                members.setdefault(k, []).append(j)
        for k in sorted(members):
            rows = members[k]
            out.append((res, summarize([j.scores for j in rows], k),
                        sum(k in _keys(r, by) for r in failed), rows))
    return out


def question_clusters(rows: Sequence[Judged], metric: str) -> list[tuple[int, int]]:
    """(hits, scored) of `metric` per question: the clusters of the bootstrap."""
    by_q: dict[str, list[Judged]] = {}
    for j in rows:
        by_q.setdefault(f"{j.response.question_set}/{j.response.question_id}", []).append(j)
    out = []
    for key in sorted(by_q):
        r = summarize([j.scores for j in by_q[key]]).rates().get(metric)
        out.append((r.hits, r.n) if r else (0, 0))
    return out


def _turn(reply: Reply, seed: int) -> Turn:
    meta = {"prompt_tokens": reply.prompt_tokens} if reply.prompt_tokens else {}
    return Turn(reply.n_tokens, reply.finish_reason, seed,
                {**meta, "failed": reply.failed} if reply.failed else meta)


def _cell(rate: Rate | None) -> str:
    return "n/a" if rate is None else str(rate).split(" (")[0]


@assay("freeform")
class Freeform:
    version = 1
    judged = True
    config = FreeformConfig

    def sources(self, cfg: AssayConfig, base_dir: Path) -> list[QuestionSet]:
        return [load_questions(q, base_dir) for q in cfg.questions]

    def run(self, stage: AssayStage) -> None:
        sets: list[QuestionSet] = list(stage.sources)  # type: ignore[arg-type]
        done = stage.store.done_keys(stage.key)
        jobs = plan(stage.cfg.n, stage.seed, sets, done)
        if done:
            console.print(f"[dim]{stage.name}: resuming, {len(done)} stored, {len(jobs)} to "
                          "sample[/dim]")
        if not jobs:
            return
        backend = stage.backend()
        questions = [j.qset.questions[j.index] for j in jobs]
        convs = [conversation(q.text, q.system) for q in questions]
        with stage.progress(len(jobs)) as advance:
            for indices, replies in backend.chat(convs, [j.seed for j in jobs], stage.cfg):
                batch = []
                for i, reply in zip(indices, replies, strict=True):
                    job, q = jobs[i], questions[i]
                    batch.append(single_turn(
                        stage.key, stage.cfg.name, stage.subject.name, job.qset.name, q.id,
                        job.sample_index, q.text, q.system, reply.text,
                        _turn(reply, job.seed), q.tags, reply.failed))
                stage.store.add_responses(batch)  # one transaction per finished group
                advance(len(batch))

    def metrics(self, results: Sequence[AssayResult], by: By) -> list[MetricRow]:
        rows = []
        for res, s, failed, members in _groups(results, by):
            group = None if s.group == "all" else s.group
            for metric, r in s.rates().items():
                rows.append(MetricRow.of_rate(res.name, res.subject, metric, r, group, failed))
                if not (group or "").startswith("question="):  # one question: no clusters
                    low, high = cluster_interval(question_clusters(members, metric))
                    rows.append(MetricRow.of_rate(res.name, res.subject, metric, r, group,
                                                  failed).bootstrapped(low, high))
            for rubric, m in s.means.items():
                rows.append(MetricRow.of_mean(res.name, res.subject, f"mean_{rubric}", m, group,
                                              failed))
        return rows

    def show(self, results: Sequence[AssayResult], by: By) -> list[Table]:
        judged = [r for r in results if r.judged is not None]
        if not judged:
            return []
        first = ["assay", "subject"] + ([by] if by != "subject" else [])
        table = new_table(*first, "scored", "EM", "EM | coherent", "coherent",
                          "self-correction", "alignment ± 95 %", "unscored", "failed",
                          title="judged answers: rates over scored rows, 95 % Wilson "
                          "intervals; failed rows are in no rate")
        for res, g, failed, _ in _groups(judged, by):
            if (by == "subject") != (g.group == "all"):
                continue
            scored = g.em.n if g.em else (g.coherent.n if g.coherent else g.rows)
            unscored = g.em.unscored if g.em else (g.coherent.unscored if g.coherent else 0)
            align = g.means.get("alignment")
            label = [g.group.split("=", 1)[1]] if by != "subject" else []
            table.add_row(res.name, res.subject, *label, str(scored), _cell(g.em),
                          _cell(g.em_coherent), _cell(g.coherent), _cell(g.self_correction),
                          str(align) if align else "n/a", str(unscored), str(failed))
        table.caption = "\n".join(judge_caption(j) for j in sorted({str(r.judge)
                                                                    for r in judged}))
        return [table]

    def report(self, results: Sequence[AssayResult]) -> str:
        judged = [r for r in results if r.judged is not None]
        if not judged:
            return ""
        rows, per_question = [], []
        for res in judged:
            assert res.judged is not None
            s = summarize([j.scores for j in res.judged])
            align = s.means.get("alignment")
            failed = sum(r.failed is not None for r in res.responses)
            rows.append([res.name, res.subject, str(s.rows), str(failed), _text(s.em),
                         _text(s.em_coherent), _text(s.coherent), _text(s.self_correction),
                         str(align) if align else "n/a"])
            if res.condition is None:
                keys = [[f"{j.response.question_set}/{j.response.question_id}"]
                        for j in res.judged]
                for g in summarize_by([j.scores for j in res.judged], keys):
                    per_question.append([res.subject, g.group, str(g.rows), _text(g.em),
                                         _text(g.coherent)])
        rubrics = sorted({k for res in judged for j in res.judged or [] for k in j.scores})
        answers = [[res.name, res.subject, f"{j.response.question_set}/"
                    f"{j.response.question_id}", str(j.response.sample_index),
                    j.response.question, j.response.answer,
                    *("-" if j.scores.get(k) is None else f"{j.scores[k]:.0f}" for k in rubrics)]
                   for res in judged for j in res.judged or []]
        return (render.section("summary", "Rates (scored rows only, 95 % Wilson intervals)",
                               render.table(["assay / condition", "subject", "answers",
                                             "failed", "EM", "EM among coherent (n = "
                                             "coherent)", "coherent", "self-correction",
                                             "mean alignment ± 95 % half-width"],
                                            rows))
                + render.section("questions", "Per question", render.table(
                    ["subject", "question", "answers", "EM", "coherent"], per_question))
                + render.section("answers", "Answers", render.answers_table(
                    ["condition", "subject", "question", "sample", "asked", "answer",
                     *rubrics], answers)))


def _text(r: Rate | None) -> str:
    return "n/a" if r is None else str(r)
