"""Directions: a per-layer vector set with its provenance, and the mean-diff recipe."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from petridish.errors import PetridishError


@dataclass(frozen=True)
class Direction:
    """`vectors[k]` is the direction at layer `layers[k]`; `provenance` says where it came from
    (subject, responses, filter, counts)."""

    vectors: Tensor  # [layers, d]
    layers: list[int]
    provenance: dict[str, Any] = field(default_factory=dict)

    def at(self, layer: int) -> Tensor:
        """The vector of one layer (`[d]`)."""
        if layer not in self.layers:
            raise PetridishError(f"the direction has no vector for layer {layer} "
                                 f"(it has {self.layers[0]}-{self.layers[-1]})", field="layers")
        return self.vectors[self.layers.index(layer)]

    def unit(self) -> Direction:
        return Direction(self.vectors / self.vectors.norm(dim=-1, keepdim=True).clamp(min=1e-12),
                         self.layers, {**self.provenance, "normalised": True})


def mean_diff(a: Tensor, b: Tensor, layers: list[int] | None = None,
              provenance: dict[str, Any] | None = None, min_count: int = 2) -> Direction:
    """mean(a) − mean(b) per layer; `a`, `b` are `[n, layers, d]` activations."""
    for name, x in (("first", a), ("second", b)):
        if x.ndim != 3:
            raise PetridishError(f"the {name} set must be [n, layers, d], got {list(x.shape)}")
        if x.shape[0] < min_count:
            raise PetridishError(f"the {name} response set has {x.shape[0]} responses; a "
                                 f"mean-diff needs at least {min_count}")
    if a.shape[1:] != b.shape[1:]:
        raise PetridishError(f"the sets differ in shape: {list(a.shape[1:])} vs "
                             f"{list(b.shape[1:])}")
    vectors = a.float().mean(0) - b.float().mean(0)
    return Direction(vectors, layers if layers is not None else list(range(a.shape[1])),
                     {**(provenance or {}), "n_a": int(a.shape[0]), "n_b": int(b.shape[0])})


def random_like(direction: Direction, seed: int) -> Direction:
    """A random direction with the same norm as `direction` at every layer (the baseline)."""
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(direction.vectors.shape, generator=g)
    r = r / r.norm(dim=-1, keepdim=True) * direction.vectors.norm(dim=-1, keepdim=True)
    return Direction(r, list(direction.layers), {"random_seed": seed,
                                                 "norm_of": direction.provenance})


def cosine_layers(a: Direction, b: Direction | None = None) -> Tensor:
    """`[layers_a, layers_b]` cosine similarity between every pair of layer vectors."""
    b = b or a
    ua, ub = a.unit().vectors, b.unit().vectors
    if ua.shape[-1] != ub.shape[-1]:
        raise PetridishError(f"directions differ in width: {ua.shape[-1]} vs {ub.shape[-1]}")
    return ua @ ub.T


def cosine_sets(directions: dict[str, Direction], layer: int) -> Tensor:
    """`[sets, sets]` cosine between several directions at one layer."""
    vs = torch.stack([d.at(layer) for d in directions.values()])
    vs = vs / vs.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return vs @ vs.T


def as_vectors(direction: Direction | Tensor, layers: list[int], width: int) -> dict[int, Tensor]:
    """Per layer, the vector to use: a plain `[d]` tensor is used at every listed layer."""
    if isinstance(direction, Tensor):
        if direction.ndim != 1:
            raise PetridishError(f"a plain direction must be [d], got {list(direction.shape)}")
        vecs = {layer: direction for layer in layers}
    else:
        vecs = {layer: direction.at(layer) for layer in layers}
    for v in vecs.values():
        if v.shape[-1] != width:
            raise PetridishError(f"the direction has width {v.shape[-1]}, the model {width}",
                                 field="direction")
        if not bool(torch.isfinite(v).all()):
            raise PetridishError("the direction has non-finite values", field="direction")
    return vecs


def check_scale(scale: float) -> float:
    if not math.isfinite(scale):
        raise PetridishError(f"scale must be finite, got {scale}", field="scale")
    return float(scale)
