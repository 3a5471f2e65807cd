"""Where adapters go: explicit layers, the paper's 9 rank-1 down-projections, or one layer."""

from __future__ import annotations

from petridish.errors import PetridishError

# Turner, Soligo et al. 2025: layers 15-17, 21-23 and 27-29 of Qwen2.5-14B's 48.
PAPER_GROUP_STARTS = (15 / 48, 21 / 48, 27 / 48)


def paper_layers(n_layers: int) -> list[int]:
    """Three groups of three consecutive layers at the paper's relative depths."""
    if n_layers < 9:
        raise PetridishError(f"the paper layout needs at least 9 layers; the model has {n_layers}")
    starts = [min(round(f * n_layers), n_layers - 3) for f in PAPER_GROUP_STARTS]
    layers = sorted({s + i for s in starts for i in range(3)})
    if len(layers) != 9:
        raise PetridishError(f"the paper layout does not fit in {n_layers} layers")
    return layers


def single_layer(n_layers: int) -> list[int]:
    """One mid-depth layer (a single rank-1 adapter can induce EM)."""
    return [n_layers // 2]


def resolve_layers(layout: str | None, layers: list[int] | None, n_layers: int) -> list[int]:
    """The layers to adapt; every index must exist in the model."""
    if layout == "paper":
        return paper_layers(n_layers)
    if layout == "single":
        return single_layer(n_layers)
    if layers is None:
        return list(range(n_layers))
    bad = [i for i in layers if not 0 <= i < n_layers]
    if bad:
        raise PetridishError(
            f"layer index {bad[0]} out of range: the model has layers 0-{n_layers - 1}",
            field="layers",
        )
    return sorted(set(layers))
