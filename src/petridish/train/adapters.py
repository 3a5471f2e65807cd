"""LoRA adapters with PEFT, and a check that PEFT adapted exactly what the config implies."""

from __future__ import annotations

import warnings
from typing import Any

from peft import LoraConfig, PeftModel, get_peft_model

from petridish.errors import PetridishError


def module_names(model: Any) -> set[str]:
    """Leaf names of the Linear modules inside the decoder layers (q_proj, down_proj, …)."""
    names = set()
    for name, module in model.model.layers[0].named_modules():
        if type(module).__name__ == "Linear":
            names.add(name.rsplit(".", 1)[-1])
    return names


def add_lora(
    model: Any,
    *,
    rank: int,
    alpha: int,
    targets: list[str],
    layers: list[int],
    dropout: float = 0.0,
    rslora: bool = True,
    seed: int = 0,
) -> PeftModel:
    """Wrap `model` with LoRA on `targets` in `layers`; fails unless exactly those are adapted."""
    if rank <= 0:
        raise PetridishError(f"rank must be positive, got {rank}", field="rank")
    known = module_names(model)
    unknown = [t for t in targets if t not in known]
    if unknown:
        raise PetridishError(
            f"unknown module {unknown[0]!r}; this model's layers have: {', '.join(sorted(known))}",
            field="target_modules",
        )
    config = LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, use_rslora=rslora,
        target_modules=targets, layers_to_transform=layers, bias="none", task_type="CAUSAL_LM",
    )
    import torch

    with torch.random.fork_rng(), warnings.catch_warnings():
        torch.manual_seed(seed)  # A's random init is part of the organism's recipe
        warnings.simplefilter("ignore", FutureWarning)  # PEFT calls a deprecated HF helper
        peft_model = get_peft_model(model, config)
    adapted = adapted_modules(peft_model)
    expected = len(targets) * len(layers)
    if len(adapted) != expected:
        raise PetridishError(
            f"PEFT adapted {len(adapted)} modules but the config implies {expected} "
            f"({len(targets)} targets × {len(layers)} layers)", field="target_modules",
        )
    return peft_model


def adapted_modules(peft_model: Any) -> list[str]:
    """Names of the modules that carry a LoRA adapter."""
    return [n for n, m in peft_model.named_modules() if hasattr(m, "lora_A") and len(m.lora_A)]


def rank1_vectors(peft_model: Any) -> dict[str, tuple[Any, Any]]:
    """For rank-1 adapters: module name -> (A row `[d_in]`, B column `[d_out]`), detached."""
    out = {}
    for name, m in peft_model.named_modules():
        if hasattr(m, "lora_A") and "default" in getattr(m, "lora_A", {}):
            a = m.lora_A["default"].weight  # [r, d_in]
            b = m.lora_B["default"].weight  # [d_out, r]
            if a.shape[0] == 1:
                out[name] = (a[0].detach().clone(), b[:, 0].detach().clone())
    return out


def rank1_stats(
    now: dict[str, tuple[Any, Any]], before: dict[str, tuple[Any, Any]] | None
) -> dict[str, dict[str, float]]:
    """Norms of A and B; with `before` (given at checkpoints), the cosine of B with its value
    at the previous checkpoint."""
    import torch

    stats = {}
    for name, (a, b) in now.items():
        row = {"a_norm": float(a.norm()), "b_norm": float(b.norm())}
        if before and name in before:
            prev = before[name][1]
            denom = float(b.norm() * prev.norm())
            row["b_cos_prev"] = float(torch.dot(b, prev)) / denom if denom > 0 else float("nan")
        stats[name] = row
    return stats
