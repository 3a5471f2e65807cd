"""Batched sampling: left-padded prompts, our decode loop, finished rows retired as they stop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import torch

from petridish.models.decode import (
    additive_mask,
    cache_arg,
    decode_attention,
    forward_last,
    new_cache,
    supports_fast_path,
)
from petridish.models.loader import LoadedModel
from petridish.models.packing import packed_linears
from petridish.models.sampling import SamplingConfig, choose_tokens, uniforms


@dataclass(frozen=True)
class Generation:
    """One sampled answer: its tokens (end-of-turn excluded), text and why it ended."""

    token_ids: list[int]
    text: str
    finish_reason: Literal["stop", "length"]


def generate(
    lm: LoadedModel,
    prompts: list[list[int]],
    seeds: list[int],
    config: SamplingConfig,
    on_step: Callable[[int], None] | None = None,
) -> Iterator[tuple[list[int], list[Generation]]]:
    """Sample one answer per (prompt, seed); yields `(indices, generations)` as rows finish
    (each batch's early finishers in groups, then the rest of the batch).

    Prompts are sorted by length (longest first) so batches carry little padding.
    """
    if len(prompts) != len(seeds):
        raise ValueError("one seed per prompt")
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    for chunk in even_batches(order, config.batch_size):
        # packed per batch: weights changed between batches (e.g. by an intervention) count
        with packed_linears(lm.model):
            for rows, gens in _generate_batch(lm, [prompts[i] for i in chunk],
                                              [seeds[i] for i in chunk], config, on_step):
                yield [chunk[r] for r in rows], gens


def even_batches(order: list[int], limit: int) -> list[list[int]]:
    """As few batches as `limit` allows, of near-equal size (130 rows at 64: 44+43+43, not
    64+64+2): a decode step costs about the same for 40 rows as for 64 on a CPU."""
    if not order:
        return []
    count = -(-len(order) // limit)
    size, extra = divmod(len(order), count)
    out, start = [], 0
    for k in range(count):
        end = start + size + (k < extra)
        out.append(order[start:end])
        start = end
    return out


class _Stepper:
    """Our KV-cached loop over the model's own layers (Llama-family layouts)."""

    def __init__(self, model: Any, batch: int, max_len: int) -> None:
        self.model = model
        self.cache = new_cache(model, batch, max_len)
        self.allowed: torch.Tensor | None = None

    def prefill(self, ids: torch.Tensor, pos: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=ids.device).tril()
        mask = additive_mask(causal[None, None] & allowed[:, None, None, :t])
        self.allowed = additive_mask(allowed[:, None, None, :])  # [B, 1, 1, max_len]
        return forward_last(self.model, ids, pos, mask, self.cache)

    def step(self, tok: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        assert self.allowed is not None
        mask = self.allowed[..., : self.cache.length + 1]
        return forward_last(self.model, tok[:, None], pos[:, None], mask, self.cache)

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.keep(rows)
        assert self.allowed is not None
        self.allowed = self.allowed.index_select(0, rows)


class _HFStepper:
    """Fallback for other architectures: the model's own forward with a DynamicCache."""

    def __init__(self, model: Any) -> None:
        from transformers import DynamicCache

        self.model = model
        self.cache = DynamicCache()
        self.allowed: torch.Tensor | None = None
        self.length = 0

    def _call(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        assert self.allowed is not None
        self.length += ids.shape[1]
        out = self.model(
            input_ids=ids, attention_mask=self.allowed[:, : self.length].long(),
            position_ids=pos, use_cache=True, logits_to_keep=1,
            **{cache_arg(type(self.model).forward): self.cache},
        )
        return out.logits[:, -1]

    def prefill(self, ids: torch.Tensor, pos: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        self.allowed = allowed
        return self._call(ids, pos)

    def step(self, tok: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return self._call(tok[:, None], pos[:, None])

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        assert self.allowed is not None
        self.allowed = self.allowed.index_select(0, rows)


@torch.inference_mode()
def _generate_batch(
    lm: LoadedModel,
    prompts: list[list[int]],
    seeds: list[int],
    config: SamplingConfig,
    on_step: Callable[[int], None] | None,
) -> Iterator[tuple[list[int], list[Generation]]]:
    """Yields `(rows, generations)` as finished rows are retired, then the rest: a caller can
    store answers before the whole batch is done (a kill loses only unfinished rows)."""
    device = lm.device
    b, t, n_new = len(prompts), max(len(p) for p in prompts), config.max_new_tokens
    pad = lm.tokenizer.pad_token_id
    ids = torch.full((b, t), pad, dtype=torch.long)
    allowed = torch.zeros(b, t + n_new, dtype=torch.bool)
    allowed[:, t:] = True
    for row, p in enumerate(prompts):
        ids[row, t - len(p) :] = torch.tensor(p, dtype=torch.long)
        allowed[row, t - len(p) : t] = True
    ids, allowed = ids.to(device), allowed.to(device)
    pos = (allowed[:, :t].long().cumsum(-1) - 1).clamp_(min=0)
    u = uniforms(seeds, n_new).to(device)
    eos = torch.tensor(lm.eos_ids, dtype=torch.long, device=device)

    out = torch.full((b, n_new), pad, dtype=torch.long, device=device)
    length = torch.full((b,), n_new, dtype=torch.long)
    stopped = torch.zeros(b, dtype=torch.bool)
    rows = torch.arange(b, device=device)  # original row of each live row in the batch
    live = torch.ones(b, dtype=torch.bool, device=device)  # False = finished, not yet dropped

    fast = supports_fast_path(lm.model)
    stepper: _Stepper | _HFStepper = (
        _Stepper(lm.model, b, t + n_new) if fast else _HFStepper(lm.model)
    )
    with decode_attention(lm.model) if fast else nullcontext():
        logits = stepper.prefill(ids, pos, allowed)
        next_pos = pos[:, -1] + 1
        for step in range(n_new):
            if step < config.min_new_tokens:  # end-of-turn may not be chosen yet
                logits[:, eos] = float("-inf")
            tok = choose_tokens(logits, u[rows, step], config.temperature, config.top_p)
            out[rows, step] = tok
            ended = live & torch.isin(tok, eos)
            if ended.any():
                done = rows[ended].cpu()
                length[done] = step
                stopped[done] = True
                live &= ~ended
            if on_step is not None:
                on_step(int(live.sum()))
            if step == n_new - 1 or not live.any():
                break
            if (~live).sum() * 4 >= live.numel():  # retire finished rows in bulk
                keep = live.nonzero()[:, 0]
                yield _finished(lm, rows[~live].tolist(), out, length, stopped)
                stepper.keep(keep)
                rows, tok, next_pos = rows[keep], tok[keep], next_pos[keep]
                live = torch.ones(len(rows), dtype=torch.bool, device=device)
            logits = stepper.step(tok, next_pos)
            next_pos = next_pos + 1

    yield _finished(lm, rows.tolist(), out, length, stopped)


def _finished(lm: LoadedModel, rows: list[int], out: torch.Tensor, length: torch.Tensor,
              stopped: torch.Tensor) -> tuple[list[int], list[Generation]]:
    gens = []
    for row in rows:
        tokens = out[row, : int(length[row])].tolist()
        text = str(lm.tokenizer.decode(tokens, skip_special_tokens=True))
        gens.append(Generation(tokens, text, "stop" if bool(stopped[row]) else "length"))
    return rows, gens

