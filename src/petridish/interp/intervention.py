"""What an assay runs under: hooks applied while sampling (steering, ablation), the part of it
that enters the stage key, and a typed description of the condition for reports."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from petridish.models.loader import LoadedModel


class SteerCondition(BaseModel):
    """One point of a steering sweep; λ = 0 (unsteered) stands for every layer (`layers`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["steer"] = "steer"
    sweep: str
    direction: str
    scale: float
    layer: int | None = None
    layers: list[int] | None = None
    unit: str = "raw"
    random_seed: int | None = None  # a same-norm random direction: the control
    vector_norm: float | None = None  # ‖v_L‖ and r_L at this layer, for the figure
    residual_norm: float | None = None

    def points(self) -> list[int]:
        """The layers this condition is a point of in the sweep's figure."""
        return self.layers or ([self.layer] if self.layer is not None else [])


class AblateCondition(BaseModel):
    """One ablation mode of an `[[ablate]]` table; a direction from another subject makes it a
    transfer."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["ablate"] = "ablate"
    table: str
    direction: str
    mode: str
    transfer: bool = False
    direction_subject: str = ""
    layer: int | None = None
    seed: int | None = None
    activations_of: str | None = None  # whose activations a matched null was fitted to


ConditionInfo = Annotated[SteerCondition | AblateCondition, Field(discriminator="kind")]


@dataclass(frozen=True)
class Intervention:
    """Hooks applied while sampling; `key` enters the stage key, `info` the stage info."""

    key: dict[str, Any]
    apply: Callable[[LoadedModel], AbstractContextManager[Any]]
    info: SteerCondition | AblateCondition
