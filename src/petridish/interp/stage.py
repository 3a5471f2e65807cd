"""Direction stages (activations → mean-diff, saved with provenance) and the sampled, judged
conditions of steering sweeps and ablations."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ConfigDict
from safetensors.torch import load_file

from petridish.errors import PetridishError
from petridish.interp.activations import answer_rows, collect_activations, decoder_layers
from petridish.interp.config import DirectionConfig
from petridish.interp.directions import Direction, describe, mean_diff
from petridish.interp.filters import parse_filter
from petridish.interp.tokendump import TokenDump
from petridish.judges.stage import Judged, JudgeInfo, judged_responses
from petridish.killpoint import committed
from petridish.models.subject import Subject, load_subject
from petridish.paths import atomic_save_tensors
from petridish.progress import console
from petridish.store.run import Run
from petridish.store.stage import StageInfo, run_stage

VERSION = 1


class DirectionInfo(StageInfo):
    """A direction stage: its name and the scalar parts of its provenance."""

    model_config = ConfigDict(extra="allow", frozen=True)

    direction: str

    def result(self) -> str:
        return describe(self.direction, dict(self.model_extra or {}))


@dataclass(frozen=True)
class JudgedAssay:
    """Where an assay's judged answers of one subject live (for filters)."""

    sample_key: str
    judge_info: JudgeInfo

    def responses(self, run: Run) -> list[Judged]:
        return judged_responses(run.store, self.judge_info)


def save_direction(path: Path, d: Direction) -> None:
    atomic_save_tensors(path, {"vectors": d.vectors}, {"layers": json.dumps(d.layers),
                                                       "provenance": json.dumps(d.provenance)})


def save_activations(path: Path, acts: torch.Tensor, provenance: dict[str, Any]) -> None:
    """`[n, layers, d]` answer-token means, with where they came from (for later probes)."""
    atomic_save_tensors(path, {"activations": acts}, {"provenance": json.dumps(provenance)})


def load_direction(path: Path) -> Direction:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    return Direction(load_file(str(path))["vectors"], json.loads(meta["layers"]),
                     json.loads(meta["provenance"]))


def run_direction_stage(run: Run, cfg: DirectionConfig, subjects: dict[str, Subject],
                        judged: dict[tuple[str, str], JudgedAssay], device: str) -> Direction:
    """Compute (or load) one direction; the file is `directions/NAME.safetensors`."""
    source = judged[(cfg.assay, cfg.texts_of or cfg.subject)]
    path = run.folder / "directions" / f"{cfg.name}.safetensors"
    name = f"direction:{cfg.name}"
    begin = DirectionInfo(direction=cfg.name)

    def work(key: str) -> DirectionInfo:
        at = Place(run.folder, run.folder / "activations" / f".partial-{key[:12]}", name)
        d = _compute(run, cfg, subjects, source, device, at)
        d = Direction(d.vectors, d.layers, {
            **d.provenance, "vector_norms": d.vectors.float().norm(dim=-1).tolist(),
            "residual_norms": at.residual_norms()})  # aligned with d.layers
        save_direction(path, d)
        shutil.rmtree(at.partial, ignore_errors=True)  # the chunks are in the saved files now
        return DirectionInfo(direction=cfg.name, **{
            k: v for k, v in d.provenance.items() if isinstance(v, int | str)})

    run_stage(run, "direction", name, VERSION, {
        "config": cfg.model_dump(), "sample": source.sample_key,
        "judge": source.judge_info.judge,
        "subjects": {s: subjects[s].fingerprint for s in
                     [cfg.subject, *(cfg.contrast or []), *(cfg.fallback_contrast or [])]},
    }, begin, work, complete=lambda _: path.exists())
    return load_direction(path)


@dataclass(frozen=True)
class Place:
    """Where a direction stage writes: the run folder, its resumable chunks, its name; and
    the residual norms its activation passes found (token-weighted, per layer)."""

    folder: Path
    partial: Path
    stage: str
    norms: list[tuple[torch.Tensor, float]] = field(default_factory=list)

    def residual_norms(self) -> list[float]:
        total = sum(w for _, w in self.norms)
        if not total:
            return []
        mean = torch.stack([n * w for n, w in self.norms]).sum(0) / total
        return [float(x) for x in mean]


def _compute(run: Run, cfg: DirectionConfig, subjects: dict[str, Subject], source: JudgedAssay,
             device: str, at: Place) -> Direction:
    name = at.stage
    rows = source.responses(run)
    if cfg.contrast is not None:
        return _from_contrast(cfg, cfg.contrast, subjects, rows, device, at)
    fa, fb = parse_filter(cfg.a), parse_filter(cfg.b)
    a = [j for j in rows if fa(j.scores)]
    b = [j for j in rows if fb(j.scores)]
    if min(len(a), len(b)) >= cfg.min_responses:
        return _from_filters(cfg, subjects[cfg.subject], a, b, device, at)
    if cfg.fallback_contrast:
        console.print(f"[yellow]{name}: '{cfg.a}' kept {len(a)} and '{cfg.b}' kept "
                      f"{len(b)} responses (< {cfg.min_responses}); falling back to the "
                      f"contrast {cfg.fallback_contrast[0]} − {cfg.fallback_contrast[1]}"
                      "[/yellow]")
        return _from_contrast(cfg, cfg.fallback_contrast, subjects, rows, device, at,
                              note=f"fallback: filters kept {len(a)} / {len(b)} responses")
    raise PetridishError(f"filter '{cfg.a if len(a) < cfg.min_responses else cfg.b}' "
                         f"leaves {min(len(a), len(b))} responses of {len(rows)} "
                         f"(need {cfg.min_responses}); loosen it or set "
                         "fallback_contrast", field=f"direction.{cfg.name}")


def _acts(cfg: DirectionConfig, subject: Subject, rows: list[Judged], device: str,
          at: Place, dump: str, provenance: dict[str, Any]) -> torch.Tensor:
    """`[n, layers, d]` answer means, computed in chunks of whole batches in the same
    length-sorted order as one pass (so the same numbers), each chunk saved as it finishes: a
    killed stage recomputes only the chunks it had not saved. With `per_token`, the tokens
    are streamed to `dump` in one pass instead (a killed dump starts again)."""
    lm = load_subject(subject, device=device, dtype=cfg.dtype)
    questions = [j.response.question for j in rows]
    answers = [j.response.answer for j in rows]
    systems = [j.response.system for j in rows]
    if cfg.per_token:
        layers = cfg.per_token_layers or list(range(len(decoder_layers(lm.model))))
        writer = TokenDump(at.folder / "activations", dump, layers,
                           {**provenance, "subject": subject.name})
        norms = torch.zeros(len(rows), len(decoder_layers(lm.model)))
        out = collect_activations(lm, questions, answers, systems=systems,
                                  batch_size=cfg.batch_size, norms=norms,
                                  on_tokens=lambda i, t: writer.add(_rid(rows[i]), t[:, layers]))
        writer.close()
        assert isinstance(out, torch.Tensor)
        counts = torch.tensor([float(len(ids) - p)
                               for ids, p in answer_rows(lm, questions, answers, systems)])
        at.norms.append(((norms * counts[:, None]).sum(0) / counts.sum(), float(counts.sum())))
        return out
    tokenised = answer_rows(lm, questions, answers, systems)
    lengths = [len(ids) for ids, _ in tokenised]
    order = sorted(range(len(rows)), key=lambda i: lengths[i])
    size = cfg.batch_size * CHUNK_BATCHES
    parts: list[torch.Tensor] = []
    norm_parts: list[torch.Tensor] = []
    for k, start in enumerate(range(0, len(order), size)):
        idx = order[start:start + size]
        file = at.partial / f"{dump}-{k:05d}.safetensors"
        if file.is_file():
            saved = load_file(str(file))
            parts.append(saved["activations"])
            norm_parts.append(saved["norms"])
            continue
        norms = torch.zeros(len(idx), len(decoder_layers(lm.model)))
        acts = collect_activations(lm, [questions[i] for i in idx], [answers[i] for i in idx],
                                   systems=[systems[i] for i in idx], batch_size=cfg.batch_size,
                                   norms=norms)
        assert isinstance(acts, torch.Tensor)
        atomic_save_tensors(file, {"activations": acts, "norms": norms})
        committed(at.stage)
        parts.append(acts)
        norm_parts.append(norms)
    out = torch.empty(len(rows), *parts[0].shape[1:])
    out[torch.tensor(order)] = torch.cat(parts)
    counts = torch.tensor([float(len(ids) - p) for ids, p in tokenised])[torch.tensor(order)]
    mean_norm = (torch.cat(norm_parts) * counts[:, None]).sum(0) / counts.sum()  # [layers]
    at.norms.append((mean_norm, float(counts.sum())))
    return out


CHUNK_BATCHES = 4  # batches per saved chunk of a direction's activations


def _from_filters(cfg: DirectionConfig, subject: Subject, a: list[Judged], b: list[Judged],
                  device: str, at: Place) -> Direction:
    prov = {"kind": "filters", "subject": subject.name, "assay": cfg.assay, "a": cfg.a,
            "b": cfg.b, "responses_a": [_rid(j) for j in a], "responses_b": [_rid(j) for j in b]}
    acts = _acts(cfg, subject, a + b, device, at, cfg.name, prov)
    save_activations(at.folder / "activations" / f"{cfg.name}.safetensors", acts, prov)
    return mean_diff(acts[:len(a)], acts[len(a):], provenance=prov)


def _from_contrast(cfg: DirectionConfig, pair: list[str], subjects: dict[str, Subject],
                   rows: list[Judged], device: str, at: Place, note: str = "") -> Direction:
    texts = [j for j in rows if j.response.answer.strip()]
    if len(texts) < 2:
        raise PetridishError(f"a contrast needs answers to run on; {len(texts)} found",
                             field=f"direction.{cfg.name}")
    prov = {"kind": "contrast", "a_subject": pair[0], "b_subject": pair[1], "assay": cfg.assay,
            "texts_of": cfg.texts_of or cfg.subject, "note": note, "responses": len(texts)}
    a, b = (_acts(cfg, subjects[who], texts, device, at, f"{cfg.name}-{who}", prov)
            for who in pair)
    for who, acts in zip(pair, (a, b), strict=True):
        save_activations(at.folder / "activations" / f"{cfg.name}-{who}.safetensors", acts,
                         {**prov, "subject": who, "responses_of": [_rid(j) for j in texts]})
    return mean_diff(a, b, provenance=prov)


def _rid(j: Judged) -> str:
    r = j.response
    return f"{r.question_set}/{r.question_id}/{r.sample_index}"


