"""Interventions on a transformers model's residual stream, as forward hooks on its decoder
blocks: `steer` adds `scale · v`, `ablate` removes the component along `v`. Both are context
managers over removable handles; they remove exactly the hooks they added, in `finally`, and
compose (hooks run in the order they were added).

Positions under KV-cached generation: a forward call that starts at position 0 is the
**prompt** (prefill); a call that continues a cache holds **generated** tokens. Without a
cache every call starts at 0, so "generated" steers nothing there: use "all".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from torch import Tensor
from torch.utils.hooks import RemovableHandle

from petridish.errors import PetridishError
from petridish.interp.activations import check_layers, decoder_layers
from petridish.interp.directions import Direction, as_vectors, check_scale

Positions = Literal["all", "prompt", "generated"]


class Handle:
    """The hooks one intervention added; `remove()` takes away exactly those."""

    def __init__(self, handles: list[RemovableHandle]) -> None:
        self._handles = handles

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def _module(model: Any) -> Any:
    """Accept a LoadedModel or the transformers module itself."""
    return getattr(model, "model", model) if hasattr(model, "tokenizer") else model


def _layers(model: Any, layers: list[int] | Literal["all"] | int) -> list[int]:
    n = len(decoder_layers(model))
    if layers == "all":
        return list(range(n))
    return check_layers(model, [layers] if isinstance(layers, int) else list(layers))


def _cache_start(layer: int, kwargs: dict[str, Any]) -> int:
    """How many positions precede this call (0 for a prompt / uncached call)."""
    pos = kwargs.get("cache_position")
    if isinstance(pos, Tensor) and pos.numel():
        return int(pos.reshape(-1)[0])
    for name in ("cache", "past_key_values", "past_key_value"):  # by transformers version
        cache = kwargs.get(name)
        if cache is not None and hasattr(cache, "get_seq_length"):
            return int(cache.get_seq_length(layer))
    return 0


def _install(model: Any, layers: list[int],
             edit: Callable[[int, Tensor, int], Tensor | None]) -> Handle:
    """Hook each layer: `edit(layer, hidden, start)` returns the new hidden or None."""
    blocks = decoder_layers(model)
    handles: list[RemovableHandle] = []
    starts: dict[int, int] = {}

    def pre(layer: int) -> Callable[..., None]:
        def fn(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
            starts[layer] = _cache_start(layer, kwargs)
        return fn

    def post(layer: int) -> Callable[..., Any]:
        def fn(module: Any, args: Any, output: Any) -> Any:
            hidden = output[0] if isinstance(output, tuple) else output
            new = edit(layer, hidden, starts.get(layer, 0))
            if new is None:
                return None
            return (new, *output[1:]) if isinstance(output, tuple) else new
        return fn

    try:
        for layer in layers:
            handles.append(blocks[layer].register_forward_pre_hook(pre(layer), with_kwargs=True))
            handles.append(blocks[layer].register_forward_hook(post(layer)))
    except BaseException:
        Handle(handles).remove()
        raise
    return Handle(handles)


Unit = Literal["raw", "residual"]


def add_steering(model: Any, direction: Direction | Tensor, layers: list[int] | int,
                 scale: float, positions: Positions = "all", unit: Unit = "raw",
                 residual_norm: float | dict[int, float] | None = None) -> Handle:
    """Add `scale · v_layer` (`unit="raw"`) or `scale · r_layer · v̂_layer` (`"residual"`: λ is
    a fraction of the layer's mean residual norm `r`, from the direction's provenance or
    `residual_norm`) to the residual stream after each listed layer."""
    model = _module(model)
    if positions not in ("all", "prompt", "generated"):
        raise PetridishError(f"positions must be all, prompt or generated, not {positions!r}",
                             field="positions")
    which = _layers(model, layers)
    vecs = as_vectors(direction, which, int(model.config.hidden_size))
    s = check_scale(scale)
    if unit == "residual":
        norms = residual_norms(direction, which, residual_norm)
        vecs = {k: v.float() / v.float().norm().clamp(min=1e-12) * norms[k]
                for k, v in vecs.items()}
    elif unit != "raw":
        raise PetridishError(f"unit must be raw or residual, not {unit!r}", field="unit")

    def edit(layer: int, hidden: Tensor, start: int) -> Tensor | None:
        if positions == "prompt" and start > 0 or positions == "generated" and start == 0:
            return None
        return hidden + s * vecs[layer].to(hidden.dtype).to(hidden.device)

    return _install(model, which, edit)


def add_ablation(model: Any, direction: Direction | Tensor,
                 layers: list[int] | int | Literal["all"] = "all") -> Handle:
    """Replace `x` with `x − v̂ v̂ᵀ x` after each listed layer, at every position."""
    model = _module(model)
    which = _layers(model, layers)
    vecs = as_vectors(direction, which, int(model.config.hidden_size))
    units = {k: v.float() / v.float().norm().clamp(min=1e-12) for k, v in vecs.items()}

    def edit(layer: int, hidden: Tensor, start: int) -> Tensor:
        u = units[layer].to(hidden.device)
        h = hidden.float()
        return (h - (h @ u)[..., None] * u).to(hidden.dtype)

    return _install(model, which, edit)


def residual_norms(direction: Direction | Tensor, layers: list[int],
                   given: float | dict[int, float] | None) -> dict[int, float]:
    """Per layer, the mean residual-stream norm λ is a fraction of."""
    if given is not None:
        return {k: float(given[k] if isinstance(given, dict) else given) for k in layers}
    if isinstance(direction, Tensor):
        raise PetridishError("unit=\"residual\" with a plain tensor needs residual_norm=",
                             field="residual_norm")
    stored = direction.provenance.get("residual_norms")
    if not stored:
        raise PetridishError("the direction records no residual norms (it was computed before "
                             "they were); recompute it, or pass residual_norm=",
                             field="unit")
    by_layer = dict(zip(direction.layers, stored, strict=True))
    return {k: float(by_layer[k]) for k in layers}


@contextmanager
def steer(model: Any, direction: Direction | Tensor, layers: list[int] | int, scale: float,
          positions: Positions = "all", unit: Unit = "raw",
          residual_norm: float | dict[int, float] | None = None) -> Iterator[Handle]:
    """`with steer(model, v, [12], 8.0): model.generate(...)`: steered inside, clean after."""
    handle = add_steering(model, direction, layers, scale, positions, unit, residual_norm)
    try:
        yield handle
    finally:
        handle.remove()


@contextmanager
def ablate(model: Any, direction: Direction | Tensor,
           layers: list[int] | int | Literal["all"] = "all") -> Iterator[Handle]:
    """`with ablate(model, d): ...`: the direction's component is removed at every position."""
    handle = add_ablation(model, direction, layers)
    try:
        yield handle
    finally:
        handle.remove()


def hook_count(model: Any) -> int:
    """Forward hooks currently on the decoder blocks (for tests and sanity checks)."""
    blocks = decoder_layers(_module(model))
    return sum(len(b._forward_hooks) + len(b._forward_pre_hooks) for b in blocks)

