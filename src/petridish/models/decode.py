"""Forward passes for our decode loop: a preallocated KV cache over the model's own layers.

We call the transformers decoder layers themselves (so forward hooks, e.g. steering, still
fire) but skip `generate`'s per-step work: no cache concatenation, no mask rebuilding, the
LM head only on the last position, and grouped-query attention without repeating K/V.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from transformers import AttentionInterface

ATTN_NAME = "petridish_decode"
FAST_ARCHITECTURES = {"llama", "mistral", "qwen2", "qwen3"}
_NEG = torch.finfo(torch.float32).min


class KVCache:
    """Keys and values for every layer: `k[layer]` is `[B, kv_heads, max_len, head_dim]`."""

    def __init__(
        self, n_layers: int, batch: int, kv_heads: int, max_len: int, head_dim: int,
        dtype: torch.dtype, device: torch.device,
    ) -> None:
        shape = (n_layers, batch, kv_heads, max_len, head_dim)
        self.k = torch.empty(shape, dtype=dtype, device=device)
        self.v = torch.empty(shape, dtype=dtype, device=device)
        self.length = 0

    def update(
        self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Called by each attention layer: store the new K/V, return all K/V so far."""
        end = self.length + key.shape[2]
        self.k[layer_idx, :, :, self.length : end] = key
        self.v[layer_idx, :, :, self.length : end] = value
        return self.k[layer_idx, :, :, :end], self.v[layer_idx, :, :, :end]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.length

    def keep(self, rows: torch.Tensor) -> None:
        """Drop finished rows so later steps do no work for them."""
        self.k = self.k.index_select(1, rows)
        self.v = self.v.index_select(1, rows)


def grouped_attention(
    module: torch.nn.Module,
    query: torch.Tensor,  # [B, H, q, D]
    key: torch.Tensor,  # [B, KV, k, D]
    value: torch.Tensor,  # [B, KV, k, D]
    attention_mask: torch.Tensor | None,  # [B, 1, q, k] additive fp32
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention with query heads grouped per K/V head, in the cache's dtype, softmax in fp32.

    On CPU the cache is fp32 even for bf16 models: bf16 batched matmuls copy the strided cache
    slices every step, fp32 ones read them in place (and are more precise).
    """
    out_dtype = query.dtype
    query = query.to(key.dtype)
    b, h, q, d = query.shape
    kv = key.shape[1]
    g = h // kv
    scores = torch.matmul(query.reshape(b, kv, g * q, d), key.transpose(-1, -2))
    scores = scores.float().mul_(scaling).view(b, kv, g, q, -1)
    if attention_mask is not None:
        scores = scores + attention_mask[:, :, None]
    probs = torch.softmax(scores, dim=-1).to(value.dtype).view(b, kv, g * q, -1)
    out = torch.matmul(probs, value).view(b, h, q, d)
    return out.transpose(1, 2).to(out_dtype), None


AttentionInterface.register(ATTN_NAME, grouped_attention)


@functools.cache
def cache_arg(forward: Any) -> str:
    """The cache keyword of a transformers forward: `cache` from 5.x, `past_key_values` before
    (the old name still works for a while, with a warning every call)."""
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def supports_fast_path(model: Any) -> bool:
    """Our loop needs the Llama-family layout (embed, rotary, layers, norm, lm_head)."""
    return getattr(model.config, "model_type", None) in FAST_ARCHITECTURES and all(
        hasattr(model.model, a) for a in ("embed_tokens", "rotary_emb", "layers", "norm")
    )


@contextmanager
def decode_attention(model: Any) -> Iterator[None]:
    """Route attention through `grouped_attention` for the duration, then restore."""
    config = model.config
    previous = config._attn_implementation
    config._attn_implementation = ATTN_NAME
    try:
        yield
    finally:
        config._attn_implementation = previous


def new_cache(model: Any, batch: int, max_len: int) -> KVCache:
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    weight = model.model.embed_tokens.weight
    dtype = torch.float32 if weight.device.type == "cpu" else weight.dtype
    return KVCache(
        cfg.num_hidden_layers, batch, cfg.num_key_value_heads, max_len, head_dim,
        dtype, weight.device,
    )


def additive_mask(allowed: torch.Tensor) -> torch.Tensor:
    """Bool `[B, 1, q, k]` (True = may attend) to an additive fp32 mask."""
    zero = torch.zeros((), dtype=torch.float32, device=allowed.device)
    neg = torch.tensor(_NEG, dtype=torch.float32, device=allowed.device)
    return torch.where(allowed, zero, neg)


def forward_last(
    model: Any,
    input_ids: torch.Tensor,  # [B, q]
    position_ids: torch.Tensor,  # [B, q]
    mask: torch.Tensor,  # [B, 1, q, k] additive
    cache: KVCache,
) -> torch.Tensor:
    """Run the decoder over `input_ids` with the cache; logits of the last position `[B, V]`.

    Logits stay in the model's dtype: sampling upcasts inside its softmax, saving a copy.
    """
    inner = model.model
    cache_kw = {cache_arg(type(inner.layers[0]).forward): cache}
    hidden = inner.embed_tokens(input_ids)
    rotary = inner.rotary_emb(hidden, position_ids=position_ids)
    for layer in inner.layers:
        hidden = layer(
            hidden,
            attention_mask=mask,
            position_ids=position_ids,
            use_cache=True,
            position_embeddings=rotary,
            **cache_kw,
        )
        if isinstance(hidden, tuple):  # older transformers return (hidden, ...)
            hidden = hidden[0]
    cache.length += input_ids.shape[1]
    last = inner.norm(hidden[:, -1:])
    return model.lm_head(last)[:, 0]
