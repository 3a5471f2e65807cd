"""Sampling settings and the token choice: exact top-p by inverse CDF, one uniform per token.

Each sample owns a seeded stream of uniforms, so its text depends only on (seed, prompt,
sample index), never on which other prompts share its batch.
"""

from __future__ import annotations

import hashlib

import torch
from pydantic import BaseModel, Field

from petridish.names import TABLE

_BLOCK = 256  # vocabulary block for two-level inverse-CDF sampling
_TOPK_FIRST = 256  # top-p looks here first; rows whose nucleus is wider fall back to a full sort


class SamplingConfig(BaseModel):
    """How answers are sampled; the same fields appear in experiment TOML and the CLI."""

    model_config = TABLE

    n: int = Field(1, gt=0, description="samples per question")
    temperature: float = Field(1.0, ge=0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus mass kept")
    max_new_tokens: int = Field(128, gt=0, description="answer length cap, in tokens")
    min_new_tokens: int = Field(0, ge=0, description="end-of-turn is ignored before this many")
    seed: int = Field(0, description="same seed, same text")
    batch_size: int = Field(64, gt=0, description="rows decoded together (split evenly); "
                            "larger is faster on a CPU until memory runs out")


def sample_seed(seed: int, key: str, index: int) -> int:
    """A 63-bit seed for one sample, from the run seed, a prompt key and the sample index."""
    digest = hashlib.sha256(f"{seed}\x00{key}\x00{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def uniforms(seeds: list[int], steps: int) -> torch.Tensor:
    """`[rows, steps]` float64 uniforms, one independent stream per row."""
    out = torch.empty(len(seeds), steps, dtype=torch.float64)
    gen = torch.Generator()
    for row, s in enumerate(seeds):
        gen.manual_seed(s)
        out[row] = torch.rand(steps, generator=gen, dtype=torch.float64)
    return out


def choose_tokens(
    logits: torch.Tensor,  # [B, V], any float dtype
    u: torch.Tensor,  # [B] float64 in [0, 1)
    temperature: float,
    top_p: float,
) -> torch.Tensor:
    """Next token per row: greedy at temperature 0, else exact (nucleus) sampling."""
    if temperature == 0:
        return logits.argmax(dim=-1)  # bf16 -> fp32 is exact, so no upcast is needed
    scaled = logits if temperature == 1 else logits.float() / temperature
    probs = torch.softmax(scaled, dim=-1, dtype=torch.float32)
    if top_p >= 1.0:
        return _inverse_cdf(probs, u)
    k = min(_TOPK_FIRST, probs.shape[-1])
    out = torch.empty(probs.shape[0], dtype=torch.long, device=probs.device)
    todo = torch.ones_like(out, dtype=torch.bool)
    while todo.any():  # widen the candidate list until each row's nucleus fits in it
        rows = todo.nonzero()[:, 0]
        top, idx = probs[rows].topk(k, dim=-1)  # sorted, descending
        fits = top.sum(-1) >= top_p if k < probs.shape[-1] else torch.ones_like(rows).bool()
        if fits.any():
            picked = _nucleus(top[fits], u[rows[fits]], top_p)
            out[rows[fits]] = idx[fits].gather(1, picked[:, None])[:, 0]
        todo[rows[fits]] = False
        k = min(k * 16, probs.shape[-1])
    return out


def _nucleus(sorted_probs: torch.Tensor, u: torch.Tensor, top_p: float) -> torch.Tensor:
    """Index into descending `sorted_probs` sampled from the smallest set with mass >= top_p."""
    before = sorted_probs.cumsum(-1) - sorted_probs  # mass strictly before each token
    kept = torch.where(before < top_p, sorted_probs, torch.zeros_like(sorted_probs))
    return _inverse_cdf(kept, u)


def _inverse_cdf(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Sample an index per row with probability proportional to `weights` (>= 0).

    Two levels (block sums, then one block) keep the sequential cumsum short: a full-vocab
    cumsum per step costs more than the rest of sampling together.
    """
    b, v = weights.shape
    nb = -(-v // _BLOCK)
    if nb * _BLOCK != v:
        weights = torch.nn.functional.pad(weights, (0, nb * _BLOCK - v))
    blocks = weights.view(b, nb, _BLOCK)
    mass = blocks.sum(-1).double()  # [b, nb]; fp32 within a block is exact enough
    cdf = mass.cumsum(-1)
    target = u.to(cdf.device, torch.float64) * cdf[:, -1]
    block = torch.searchsorted(cdf, target[:, None], right=True)[:, 0].clamp_(max=nb - 1)
    rest = target - (cdf - mass).gather(1, block[:, None])[:, 0]
    inner = blocks[torch.arange(b, device=weights.device), block].double()  # [b, _BLOCK]
    inner_cdf = inner.cumsum(-1)
    j = torch.searchsorted(inner_cdf, rest[:, None], right=True)[:, 0]
    # rounding must never land on a zero-weight token: stop at the block's last positive one
    last = _BLOCK - 1 - (inner > 0).flip(-1).int().argmax(-1)
    return (block * _BLOCK + torch.minimum(j, last)).clamp_(max=v - 1)
