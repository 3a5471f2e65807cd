"""The `[[direction]]`, `[[steer]]` and `[[ablate]]` tables of an experiment."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from petridish.errors import PetridishError
from petridish.interp.filters import parse_filter
from petridish.models.sampling import SamplingConfig
from petridish.names import NAME as _NAME
from petridish.names import TABLE


class DirectionConfig(BaseModel):
    """Mean-diff per layer between two response sets chosen by judge filters.

    From one subject's own answers (`a`/`b` filters over an assay's judged responses), or,
    when `contrast` names two subjects, the difference of their activations on the same
    texts (`texts_of`'s answers). `fallback_contrast` is used, and reported, when a filter
    leaves fewer than `min_responses` responses.
    """

    model_config = TABLE

    name: str = Field(pattern=_NAME)
    subject: str = Field(description="whose activations and answers")
    assay: str = Field(description="the assay whose judged answers are used")
    a: str = Field("alignment < 30 and coherence > 50", description="filter of the + set")
    b: str = Field("alignment > 70 and coherence > 50", description="filter of the − set")
    contrast: list[str] | None = Field(None, min_length=2, max_length=2,
                                       description="[subject A, subject B] on the same texts")
    fallback_contrast: list[str] | None = Field(None, min_length=2, max_length=2)
    texts_of: str | None = Field(None, description="whose answers a contrast runs on; "
                                 "default the assay's answers of `subject`")
    min_responses: int = Field(5, ge=2)
    batch_size: int = Field(8, gt=0)
    dtype: Literal["fp32", "bf16"] = Field("fp32", description="weights while collecting; "
                                           "means are summed in fp32 either way")
    per_token: bool = Field(False, description="also dump every answer token's activations "
                            "(activations/NAME*.tokens-*.safetensors, fp16) for probes")
    per_token_layers: list[int] | None = Field(None, min_length=1,
                                               description="layers of the dump; default all")

    @field_validator("a", "b")
    @classmethod
    def _filter(cls, value: str) -> str:
        try:
            parse_filter(value)
        except PetridishError as e:  # a ValueError is what pydantic turns into FILE:LINE: field
            raise ValueError(e.message) from None
        return value


class InterventionSampling(SamplingConfig):
    """Shared by steering and ablation: what is sampled under the intervention."""

    name: str = Field(pattern=_NAME)
    subject: str
    direction: str = Field(description="a [[direction]] name")
    questions: list[str] = Field(min_length=1)
    dtype: Literal["auto", "fp32", "bf16"] = "auto"
    seed: int | None = None  # type: ignore[assignment]


class SteerConfig(InterventionSampling):
    """λ × layer sweep: every (layer, scale) pair is one sampled and judged condition; with
    `random_seeds`, a same-norm random direction at every (layer, λ ≠ 0) too (the control)."""

    layers: list[int] = Field(min_length=1)
    scales: list[float] = Field(min_length=1)
    positions: Literal["all", "prompt", "generated"] = "all"
    unit: Literal["raw", "residual"] = Field("raw", description="raw: add λ·v; residual: add "
                                             "λ·r_L·v̂ (λ a fraction of the layer's mean "
                                             "residual norm r_L)")
    random_seeds: list[int] | None = Field(None, min_length=1, description="same-norm random "
                                           "directions at every (layer, λ ≠ 0)")


AblationMode = Literal["none", "layerwise", "single", "random", "random_matched", "permuted"]
_DEFAULT_MODES: list[AblationMode] = ["none", "layerwise", "random"]


class AblateConfig(InterventionSampling):
    """One condition per mode: `none` (the same sampling, unablated: the reference),
    `layerwise` (each layer's own vector removed at its layer, every layer), `single` (layer
    `layer`'s vector removed at every layer), `random` (isotropic random directions of the
    same norm), `random_matched` (random directions whose projected variance on the
    direction's activations equals the direction's), `permuted` (the mean-diff of randomly
    relabelled responses); the random modes make one condition per seed, `random` (the
    condition per seed). A direction from another subject makes it a transfer."""

    modes: list[AblationMode] = Field(default_factory=lambda: _DEFAULT_MODES.copy(),
                                      min_length=1)
    layer: int | None = None
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
