"""The sampled conditions of `[[steer]]` sweeps and `[[ablate]]` tables: each is an assay
name plus the hooks applied while sampling; its key holds the direction's hash."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from petridish.assays.freeform import FreeformConfig
from petridish.errors import PetridishError
from petridish.interp.config import AblateConfig, InterventionSampling, SteerConfig
from petridish.interp.directions import Direction, random_like
from petridish.interp.intervention import AblateCondition, Intervention, SteerCondition
from petridish.interp.interventions import ablate, steer
from petridish.interp.nulls import NullSource
from petridish.models.loader import LoadedModel
from petridish.models.sampling import SamplingConfig


@dataclass(frozen=True)
class Condition:
    """One sampled, judged condition: `assay.name` is e.g. `sweep.L12.x8`."""

    assay: FreeformConfig
    subject: str
    intervention: Intervention


def digest(d: Direction) -> str:
    return hashlib.sha256(d.vectors.float().contiguous().numpy().tobytes()).hexdigest()[:16]


def _assay(cfg: InterventionSampling, name: str) -> FreeformConfig:
    sampling = cfg.model_dump(include=set(SamplingConfig.model_fields) - {"seed"})
    return FreeformConfig(name=name, questions=cfg.questions, dtype=cfg.dtype, seed=cfg.seed,
                       **sampling)


Apply = Callable[[LoadedModel], AbstractContextManager[Any]]


def _steering(d: Direction, layer: int, scale: float, positions: Any, unit: Any,
              residual: dict[int, float] | None) -> Apply:
    return lambda lm: steer(lm.model, d, [layer], scale, positions, unit, residual)


def _ablation(d: Direction | Any) -> Apply:
    return lambda lm: ablate(lm.model, d, "all")


def _norms(d: Direction, key: str) -> dict[int, float]:
    values = d.provenance.get(key) or []
    return dict(zip(d.layers, (float(v) for v in values), strict=False))


def steer_conditions(cfg: SteerConfig, d: Direction) -> list[Condition]:
    """One condition per (layer, λ ≠ 0), and per random seed a same-norm random direction
    there (the control); λ = 0 is unsteered, so it is sampled once (`NAME.x0`) and serves as
    every layer's reference."""
    out = []
    if 0 in cfg.scales:
        info = SteerCondition(sweep=cfg.name, direction=cfg.direction, scale=0.0,
                              layers=cfg.layers, unit=cfg.unit)
        out.append(Condition(_assay(cfg, f"{cfg.name}.x0"), cfg.subject,
                             Intervention({"steer": None}, lambda lm: nullcontext(), info)))
    vector_norms, residual = _norms(d, "vector_norms"), _norms(d, "residual_norms")
    unit = {"unit": "residual"} if cfg.unit == "residual" else {}  # raw keys stay as they were
    for layer in cfg.layers:
        for scale in (s for s in cfg.scales if s != 0):
            for seed in [None, *(cfg.random_seeds or [])]:
                v = d if seed is None else random_like(d, seed)
                name = f"{cfg.name}.L{layer}.x{scale:g}" + ("" if seed is None
                                                             else f".random-{seed}")
                key = {"steer": digest(v), "layer": layer, "scale": scale,
                       "positions": cfg.positions, **unit}
                info = SteerCondition(sweep=cfg.name, direction=cfg.direction, scale=scale,
                                      layer=layer, unit=cfg.unit, random_seed=seed,
                                      vector_norm=vector_norms.get(layer),
                                      residual_norm=residual.get(layer))
                out.append(Condition(_assay(cfg, name), cfg.subject, Intervention(
                    key, _steering(v, layer, scale, cfg.positions, cfg.unit,
                                   residual or None), info)))
    return out


def ablate_conditions(cfg: AblateConfig, d: Direction, direction_subject: str,
                      nulls: NullSource | None = None) -> list[Condition]:
    """One condition per mode (the random ones: per seed). `nulls` gives the activations and
    permutations the matched nulls need."""
    transfer = direction_subject != cfg.subject

    def info(mode: str, **extra: Any) -> AblateCondition:
        return AblateCondition(table=cfg.name, direction=cfg.direction, mode=mode,
                               transfer=transfer, direction_subject=direction_subject, **extra)

    def cond(name: str, key: dict[str, Any], apply: Apply, about: AblateCondition) -> Condition:
        return Condition(_assay(cfg, f"{cfg.name}.{name}"), cfg.subject,
                         Intervention(key, apply, about))

    out = []
    for mode in dict.fromkeys(cfg.modes):
        if mode == "none":
            out.append(cond("none", {"ablate": None}, lambda lm: nullcontext(), info(mode)))
        elif mode == "layerwise":
            out.append(cond("layerwise", {"ablate": digest(d), "mode": "layerwise"},
                            _ablation(d), info(mode)))
        elif mode == "single":
            layer = cfg.layer if cfg.layer is not None else d.layers[len(d.layers) // 2]
            out.append(cond(f"single-L{layer}", {"ablate": digest(d), "mode": "single",
                                                 "layer": layer},
                            _ablation(d.at(layer)), info(mode, layer=layer)))
        else:
            if mode != "random" and nulls is None:
                raise PetridishError(f"ablation mode {mode!r} needs the direction's "
                                     "activations", field=f"ablate.{cfg.name}.modes")
            for seed in cfg.seeds:
                if mode == "random":
                    r, of = random_like(d, seed), None
                elif mode == "random_matched":
                    assert nulls is not None
                    r = random_like(d, seed, "variance", nulls.activations())
                    of = nulls.of
                else:
                    assert nulls is not None
                    r, of = nulls.permuted(seed), nulls.of
                out.append(cond(f"{mode}-{seed}", {"ablate": digest(r), "mode": mode,
                                                   "seed": seed},
                                _ablation(r), info(mode, seed=seed, activations_of=of)))
    return out
