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


def describe(name: str, provenance: dict[str, Any]) -> str:
    """What a direction is, in words: a fallback contrast is never passed off as an EM
    direction."""
    if provenance.get("kind") == "contrast":
        text = (f"{name} = {provenance.get('a_subject')} − {provenance.get('b_subject')} "
                f"contrast on {provenance.get('texts_of')}'s answers")
        note = provenance.get("note")
        return f"{text} ({note})" if note else text
    if provenance.get("kind") == "filters":
        return (f"{name} = mean-diff of {provenance.get('subject')}'s answers "
                f"'{provenance.get('a')}' − '{provenance.get('b')}'")
    return name


def random_like(direction: Direction, seed: int, match: str = "norm",
                activations: Tensor | None = None) -> Direction:
    """A random direction with the same norm as `direction` at every layer.

    `match="norm"`: isotropic, so it removes about 1/d of the residual's variance (a null for
    "does removing *some* direction hurt?"). `match="variance"`: for every layer, the centred
    variance of the projection of `activations` (`[n, layers, d]`, those the direction was
    computed from) on the random unit vector equals that on the real one (a null for "is it
    *this* direction?")."""
    g = torch.Generator().manual_seed(seed)
    norms = direction.vectors.float().norm(dim=-1, keepdim=True)
    if match == "norm":
        r = torch.randn(direction.vectors.shape, generator=g)
        r = r / r.norm(dim=-1, keepdim=True) * norms
        return Direction(r, list(direction.layers), {"random_seed": seed, "match": "norm"})
    if match != "variance":
        raise PetridishError(f"match must be norm or variance, not {match!r}", field="match")
    if activations is None:
        raise PetridishError("match=\"variance\" needs the activations the direction was "
                             "computed from (activations=[n, layers, d])", field="activations")
    if activations.ndim != 3 or activations.shape[1] != len(direction.layers):
        raise PetridishError(f"activations must be [n, {len(direction.layers)}, d], got "
                             f"{list(activations.shape)}", field="activations")
    rows = [_matched(activations[:, k].double(), direction.vectors[k].double(), g)
            for k in range(len(direction.layers))]
    r = torch.stack(rows).float() * norms
    return Direction(r, list(direction.layers), {"random_seed": seed, "match": "variance"})


def projected_variance(acts: Tensor, v: Tensor) -> float:
    """Centred variance of `acts @ v̂` (`acts` `[n, d]`)."""
    u = v / v.norm().clamp(min=1e-30)
    p = (acts - acts.mean(0)) @ u.to(acts.dtype)
    return float((p * p).mean())


def _matched(acts: Tensor, real: Tensor, g: torch.Generator) -> Tensor:
    """A random unit vector whose projected variance equals the real one's: on the arc between
    a random low-variance and a random high-variance unit vector, found by bisection."""
    x = acts - acts.mean(0)
    target = projected_variance(acts, real)
    if not real.norm() > 0:
        return torch.zeros_like(real)

    def var(u: Tensor) -> float:
        p = x @ u
        return float((p * p).mean())

    low = torch.randn(real.shape, generator=g, dtype=acts.dtype)
    low = low / low.norm()
    basis = torch.linalg.svd(x, full_matrices=False).Vh  # [r, d], top variance first
    k = 0
    while var(low) > target and k < basis.shape[0]:  # push it out of the top components
        k += 1
        low = low - basis[:k].T @ (basis[:k] @ low)
        low = low / low.norm().clamp(min=1e-30)
    high = x.T @ torch.randn(x.shape[0], generator=g, dtype=acts.dtype)  # a draw from Σ
    high = high / high.norm().clamp(min=1e-30)
    for _ in range(200):  # power steps toward the top component, until above the target
        if var(high) >= target:
            break
        high = x.T @ (x @ high)
        high = high / high.norm().clamp(min=1e-30)
    a, b = 0.0, math.pi / 2
    for _ in range(80):
        t = (a + b) / 2
        u = math.cos(t) * low + math.sin(t) * high
        u = u / u.norm().clamp(min=1e-30)
        a, b = (t, b) if var(u) < target else (a, t)
    return u


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
