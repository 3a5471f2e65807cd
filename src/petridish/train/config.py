"""The `[[train]]` table: one organism, grown from a subject on a dataset."""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import Field

from petridish.names import NAME as _NAME
from petridish.train.loop import TrainSettings


class TrainConfig(TrainSettings):
    """LoRA (rank 1 and up) or full fine-tuning; the organism is named after the stage."""

    name: str = Field(pattern=_NAME, description="the organism's name, usable as a subject")
    subject: str = Field("base", description="the subject (model) it starts from")
    dataset: str = Field(description="chat JSONL: builtin:NAME or a path")
    method: Literal["lora", "full"] = "lora"
    layout: Literal["paper", "single"] | None = Field(
        None, description="paper = 9 rank-1 down_proj adapters at the paper's depths")
    layers: list[int] | None = Field(None, description="explicit layers; default all")
    target_modules: list[str] = Field(["down_proj"], min_length=1)
    rank: int = Field(1, gt=0)
    alpha: int = Field(32, gt=0)
    rslora: bool = True
    dropout: float = Field(0.0, ge=0, lt=1)
    max_length: int = Field(512, gt=8, description="tokens per example")
    overlong: Literal["truncate", "reject"] = "truncate"
    max_examples: int | None = Field(None, gt=0, description="use only the first N examples")
    init_from: str | None = Field(None, description="continue training this organism")
    checkpoint_every: int = Field(0, ge=0, description="save the adapter every N steps; 0 = off")
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="grow one organism per value, e.g. {rank = [32, 8, 1]}; named NAME-rank32",
    )


def expand_sweeps(configs: list[TrainConfig]) -> list[TrainConfig]:
    """Each swept table becomes one organism per combination of the swept values."""
    out: list[TrainConfig] = []
    for cfg in configs:
        if not cfg.sweep:
            out.append(cfg)
            continue
        bad = [k for k in cfg.sweep if k in ("name", "sweep") or k not in TrainConfig.model_fields]
        if bad:
            raise ValueError(f"cannot sweep over {bad[0]!r}")
        keys = list(cfg.sweep)
        for values in itertools.product(*(cfg.sweep[k] for k in keys)):
            suffix = "-".join(f"{k}{_label(v)}" for k, v in zip(keys, values, strict=True))
            data = {**cfg.model_dump(), **dict(zip(keys, values, strict=True))}
            out.append(TrainConfig.model_validate(
                {**data, "name": f"{cfg.name}-{suffix}", "sweep": {}}))
    return out


def _label(value: Any) -> str:
    return "_".join(map(str, value)) if isinstance(value, list) else str(value)
