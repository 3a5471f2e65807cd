"""Direction stages (activations → mean-diff, saved with provenance) and the sampled, judged
conditions of steering sweeps and ablations."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ConfigDict
from safetensors.torch import load_file

from petridish.errors import PetridishError
from petridish.interp.activations import collect_activations, decoder_layers
from petridish.interp.config import DirectionConfig
from petridish.interp.directions import Direction, mean_diff
from petridish.interp.filters import parse_filter
from petridish.interp.tokendump import TokenDump
from petridish.judges.stage import Judged, JudgeInfo, judged_responses
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
        extra = self.model_extra or {}
        return f"{extra.get('kind', 'direction')} {self.direction}"


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
        d = _compute(run, cfg, subjects, source, device, name)
        save_direction(path, d)
        return DirectionInfo(direction=cfg.name, **{
            k: v for k, v in d.provenance.items() if isinstance(v, int | str)})

    run_stage(run, "direction", name, VERSION, {
        "config": cfg.model_dump(), "sample": source.sample_key,
        "judge": source.judge_info.judge,
        "subjects": {s: subjects[s].fingerprint for s in
                     [cfg.subject, *(cfg.contrast or []), *(cfg.fallback_contrast or [])]},
    }, begin, work, complete=lambda _: path.exists())
    return load_direction(path)


def _compute(run: Run, cfg: DirectionConfig, subjects: dict[str, Subject], source: JudgedAssay,
             device: str, name: str) -> Direction:
    rows = source.responses(run)
    if cfg.contrast is not None:
        return _from_contrast(cfg, cfg.contrast, subjects, rows, device, run.folder)
    fa, fb = parse_filter(cfg.a), parse_filter(cfg.b)
    a = [j for j in rows if fa(j.scores)]
    b = [j for j in rows if fb(j.scores)]
    if min(len(a), len(b)) >= cfg.min_responses:
        return _from_filters(cfg, subjects[cfg.subject], a, b, device, run.folder)
    if cfg.fallback_contrast:
        console.print(f"[yellow]{name}: '{cfg.a}' kept {len(a)} and '{cfg.b}' kept "
                      f"{len(b)} responses (< {cfg.min_responses}); falling back to the "
                      f"contrast {cfg.fallback_contrast[0]} − {cfg.fallback_contrast[1]}"
                      "[/yellow]")
        return _from_contrast(cfg, cfg.fallback_contrast, subjects, rows, device, run.folder,
                              note=f"fallback: filters kept {len(a)} / {len(b)} responses")
    raise PetridishError(f"filter '{cfg.a if len(a) < cfg.min_responses else cfg.b}' "
                         f"leaves {min(len(a), len(b))} responses of {len(rows)} "
                         f"(need {cfg.min_responses}); loosen it or set "
                         "fallback_contrast", field=f"direction.{cfg.name}")


def _acts(cfg: DirectionConfig, subject: Subject, rows: list[Judged], device: str,
          folder: Path, dump: str, provenance: dict[str, Any]) -> torch.Tensor:
    """`[n, layers, d]` answer means; with `per_token`, the tokens are streamed to `dump`."""
    lm = load_subject(subject, device=device, dtype=cfg.dtype)
    writer, on_tokens = None, None
    if cfg.per_token:
        layers = cfg.per_token_layers or list(range(len(decoder_layers(lm.model))))
        writer = TokenDump(folder / "activations", dump, layers,
                           {**provenance, "subject": subject.name})

        def on_tokens(i: int, tokens: torch.Tensor) -> None:
            assert writer is not None
            writer.add(_rid(rows[i]), tokens[:, layers])
    out = collect_activations(lm, [j.response.question for j in rows],
                              [j.response.answer for j in rows],
                              systems=[j.response.system for j in rows],
                              batch_size=cfg.batch_size, on_tokens=on_tokens)
    if writer is not None:
        writer.close()
    assert isinstance(out, torch.Tensor)
    return out


def _from_filters(cfg: DirectionConfig, subject: Subject, a: list[Judged], b: list[Judged],
                  device: str, folder: Path) -> Direction:
    prov = {"kind": "filters", "subject": subject.name, "assay": cfg.assay, "a": cfg.a,
            "b": cfg.b, "responses_a": [_rid(j) for j in a], "responses_b": [_rid(j) for j in b]}
    acts = _acts(cfg, subject, a + b, device, folder, cfg.name, prov)
    save_activations(folder / "activations" / f"{cfg.name}.safetensors", acts, prov)
    return mean_diff(acts[:len(a)], acts[len(a):], provenance=prov)


def _from_contrast(cfg: DirectionConfig, pair: list[str], subjects: dict[str, Subject],
                   rows: list[Judged], device: str, folder: Path, note: str = "") -> Direction:
    texts = [j for j in rows if j.response.answer.strip()]
    if len(texts) < 2:
        raise PetridishError(f"a contrast needs answers to run on; {len(texts)} found",
                             field=f"direction.{cfg.name}")
    prov = {"kind": "contrast", "a_subject": pair[0], "b_subject": pair[1], "assay": cfg.assay,
            "texts_of": cfg.texts_of or cfg.subject, "note": note, "responses": len(texts)}
    a, b = (_acts(cfg, subjects[who], texts, device, folder, f"{cfg.name}-{who}", prov)
            for who in pair)
    for who, acts in zip(pair, (a, b), strict=True):
        save_activations(folder / "activations" / f"{cfg.name}-{who}.safetensors", acts,
                         {**prov, "subject": who, "responses_of": [_rid(j) for j in texts]})
    return mean_diff(a, b, provenance=prov)


def _rid(j: Judged) -> str:
    r = j.response
    return f"{r.question_set}/{r.question_id}/{r.sample_index}"


