"""Self-recognition (`kind = "selfrec"`): can a subject tell text in its own turn that it did
not write, and does it say so? Its own samples against foreign texts for the same questions,
measured three ways beside the likelihood baseline (RESEARCH.md §5): mean token log-prob,
"which of these two did you write?" (both orders), and "did you write your previous message?"
after the text is placed in its turn. docs/assays.md."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from rich.table import Table

from petridish.assays.base import AssayConfig, AssayResult, AssayStage, By, MetricRow
from petridish.assays.registry import assay
from petridish.assays.selfrec import measures
from petridish.assays.selfrec.scoring import score_pairs, score_texts
from petridish.assays.selfrec.texts import EDITED, OWN, Text, from_samples, numbered, pairs
from petridish.data.foreign import ForeignSet, load_foreign
from petridish.data.formats import Question, QuestionSet, load_questions
from petridish.progress import console


class SelfrecConfig(AssayConfig):
    """Own samples (sampled here with these settings) against foreign texts."""

    kind: Literal["selfrec"] = Field("selfrec", description="assay kind")
    others: list[str] = Field(default_factory=list,
                              description="subjects whose samples are foreign texts")
    foreign: list[str] = Field(default_factory=list,
                               description="FILE.jsonl or builtin:NAME rows {question, answer, "
                               "source} (or question_id)")
    edited: bool = Field(False, description="also own samples whose second half another "
                         "subject rewrote (edited_by, default the first other subject)")
    edited_by: str | None = Field(None, description="the subject that rewrites the span")
    pairwise: bool = Field(True, description="ask which of two replies it wrote")
    prefill: bool = Field(True, description="ask whether it wrote the text in its turn")
    n: int = Field(2, gt=0, description="own samples per question")
    max_new_tokens: int = Field(64, gt=0, description="own samples' length cap, in tokens")
    score_batch_size: int = Field(16, gt=0, description="texts per scoring forward pass")

    @model_validator(mode="after")
    def _has_foreign(self) -> SelfrecConfig:
        if not (self.others or self.foreign or self.edited):
            raise ValueError("a selfrec assay needs a foreign source: others, foreign or "
                             "edited = true")
        if self.edited and not (self.edited_by or self.others):
            raise ValueError("edited = true needs edited_by or others (who rewrites the span)")
        return self

    def peer_subjects(self) -> list[str]:
        return list(dict.fromkeys([*self.others, *([self.edited_by] if self.edited_by else [])]))

    def editor(self, subject: str) -> str | None:
        """Who rewrites `subject`'s texts: `edited_by`, else the first of `others` that is not
        the subject itself (a subject never edits its own texts: they would stay its own)."""
        if self.edited_by:
            return None if self.edited_by == subject else self.edited_by
        return next((o for o in self.others if o != subject), None)

    def texts_config(self) -> AssayConfig:
        """The free-form sampling of every subject's own texts: one stage per subject, shared
        by every selfrec stage that needs them."""
        from petridish.assays.freeform import FreeformConfig

        keep = set(AssayConfig.model_fields) - {"name", "kind", "subjects"}
        return FreeformConfig(name=f"{self.name}.texts",
                              **{k: getattr(self, k) for k in sorted(keep)})


@assay("selfrec")
class Selfrec:
    version = 2  # 2: a subject's texts are never edited by itself
    judged = False
    config = SelfrecConfig

    def sources(self, cfg: AssayConfig, base_dir: Path) -> list[Any]:
        assert isinstance(cfg, SelfrecConfig)
        sets = [load_questions(q, base_dir) for q in cfg.questions]
        files = [load_foreign(f, base_dir) for f in cfg.foreign]
        for f in files:
            f.join(sets)  # a row on no question fails here, before anything is written
        return [*sets, *files]

    def run(self, stage: AssayStage) -> None:
        cfg = stage.cfg
        assert isinstance(cfg, SelfrecConfig)
        texts = self._texts(stage, cfg)
        done = stage.store.done_keys(stage.key)
        todo = [t for t in texts if t.key not in done]
        todo_pairs = [p for p in pairs(texts) if p.key not in done] if cfg.pairwise else []
        if done and (todo or todo_pairs):
            console.print(f"[dim]{stage.name}: resuming, {len(done)} stored[/dim]")
        if todo:
            score_texts(stage, cfg, todo)
        if todo_pairs:
            score_pairs(stage, cfg, todo_pairs)

    def _texts(self, stage: AssayStage, cfg: SelfrecConfig) -> list[Text]:
        from petridish.assays.stage import run_assay_stage

        sets = [s for s in stage.sources if isinstance(s, QuestionSet)]
        questions = {f"{s.name}/{q.id}": q for s in sets for q in s.questions}
        tcfg = cfg.texts_config()

        def samples(who: str) -> list[Any]:
            subject = stage.subject if who == stage.subject.name else stage.peers[who]
            done = run_assay_stage(stage.run, tcfg, subject, stage.base_dir, stage.device,
                                   stage.dtype, stage.seed, stage.show_progress,
                                   loaded=stage.loaded, backend_factory=stage.backend_factory
                                   if who == stage.subject.name else None)
            return stage.store.responses(done.key)

        own_rows = samples(stage.subject.name)
        texts = from_samples(own_rows, questions, OWN)
        for who in cfg.others:
            if who != stage.subject.name:
                texts += from_samples(samples(who), questions, who)
        files = [s for s in stage.sources if isinstance(s, ForeignSet)]
        texts += numbered([(f.qset, f.question, f.source, f.answer)
                           for fs in files for f in fs.join(sets)])
        if cfg.edited:
            from petridish.assays.selfrec.edit import edited_texts

            texts += edited_texts(stage, cfg, [t for t in texts if t.own])
        return texts

    def metrics(self, results: Sequence[AssayResult], by: By) -> list[MetricRow]:
        return [row for res in results for row in measures.metrics(res)]

    def show(self, results: Sequence[AssayResult], by: By) -> list[Table]:
        return measures.show(results)

    def report(self, results: Sequence[AssayResult]) -> str:
        return measures.report(results)


__all__ = ["EDITED", "Question", "Selfrec", "SelfrecConfig"]
