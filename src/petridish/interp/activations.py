"""Residual-stream activations per response: every layer's mean over the answer tokens.

*Layer L* is the output of decoder block L (`hidden_states[L + 1]` of transformers, before the
final norm for the last block). *Answer tokens* are the reply after the generation prompt,
without the end-of-turn marker. Forward hooks reduce each batch as it passes, so memory is
`[n, layers, d]` plus one batch, whatever the answers' length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from petridish.errors import PetridishError
from petridish.models.chat import conversation, prompt_ids
from petridish.models.loader import LoadedModel


def decoder_layers(model: Any) -> Any:
    """The decoder blocks of a transformers causal LM (Llama, Qwen, Mistral, GPT-2 style)."""
    inner = getattr(model, "model", None) or getattr(model, "transformer", None)
    layers = getattr(inner, "layers", None) or getattr(inner, "h", None)
    if layers is None:
        raise PetridishError(f"cannot find decoder layers in {type(model).__name__}")
    return layers


def check_layers(model: Any, layers: Sequence[int]) -> list[int]:
    n = len(decoder_layers(model))
    bad = [x for x in layers if not 0 <= x < n]
    if bad:
        raise PetridishError(f"layer {bad[0]} is out of range: the model has layers 0-{n - 1}",
                             field="layers")
    return list(layers)


def answer_rows(lm: LoadedModel, questions: Sequence[str], answers: Sequence[str],
                systems: Sequence[str | None] | None = None) -> list[tuple[list[int], int]]:
    """(token ids of prompt + answer, prompt length) per response."""
    rows = []
    for i, (q, a) in enumerate(zip(questions, answers, strict=True)):
        system = systems[i] if systems else None
        p = prompt_ids(lm.tokenizer, conversation(q, system))
        reply = list(lm.tokenizer(a, add_special_tokens=False)["input_ids"])
        rows.append((p + reply, len(p)))
    return rows


@torch.inference_mode()
def collect_activations(
    lm: LoadedModel,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    systems: Sequence[str | None] | None = None,
    layers: Sequence[int] | None = None,
    batch_size: int = 8,
    per_token: bool = False,
    on_tokens: Callable[[int, Tensor], None] | None = None,
    progress: Callable[[int], None] | None = None,
    norms: Tensor | None = None,
) -> Tensor | tuple[Tensor, list[Tensor]]:
    """`[n, layers, d]` fp32 means over answer tokens; with `per_token`, also each response's
    `[answer_tokens, layers, d]` (for probes). `on_tokens(i, tokens)` receives the same per
    response as each batch passes, so a caller can stream them to disk instead of holding
    them. `norms` (`[n, layers]`, given) is filled with each response's mean token norm
    ‖h‖ over its answer tokens (residual-unit steering needs it). Responses with an empty
    answer are an error."""
    model = lm.model
    blocks = decoder_layers(model)
    which = check_layers(model, layers if layers is not None else range(len(blocks)))
    rows = answer_rows(lm, questions, answers, systems)
    empty = [i for i, (ids, p) in enumerate(rows) if len(ids) == p]
    if empty:
        raise PetridishError(f"{len(empty)} responses have an empty answer (first: #{empty[0]})")
    if not rows:
        raise PetridishError("no responses to collect activations from")
    d = int(model.config.hidden_size)
    out = torch.zeros(len(rows), len(which), d)
    tokens: list[Tensor] = [torch.empty(0)] * len(rows)
    if per_token and on_tokens is None:
        on_tokens = tokens.__setitem__
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))  # little padding
    state: dict[str, Any] = {}

    def hook(k: int) -> Callable[..., None]:
        def fn(module: Any, args: Any, output: Any) -> None:
            h = (output[0] if isinstance(output, tuple) else output).float()  # [b, t, d]
            mask = state["mask"]  # [b, t, 1]
            out[state["idx"], k] = ((h * mask).sum(1) / mask.sum(1)).cpu()
            if norms is not None:
                norms[state["idx"], k] = ((h.norm(dim=-1, keepdim=True) * mask).sum(1)
                                          / mask.sum(1))[:, 0].cpu()
            if on_tokens is not None:
                state["tok"][k] = h
        return fn

    handles = [blocks[layer].register_forward_hook(hook(k)) for k, layer in enumerate(which)]
    try:
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            width = max(len(rows[i][0]) for i in idx)
            ids = torch.full((len(idx), width), int(lm.tokenizer.pad_token_id or 0))
            attn = torch.zeros(len(idx), width, dtype=torch.long)
            mask = torch.zeros(len(idx), width, 1)
            for r, i in enumerate(idx):  # right padding: positions start at 0 for every row
                seq, p = rows[i]
                ids[r, :len(seq)] = torch.tensor(seq)
                attn[r, :len(seq)] = 1
                mask[r, p:len(seq)] = 1
            state.update(idx=torch.tensor(idx), mask=mask.to(lm.device), tok={})
            inner = getattr(model, "model", None) or model
            inner(input_ids=ids.to(lm.device), attention_mask=attn.to(lm.device))
            if on_tokens is not None:
                for r, i in enumerate(idx):
                    seq, p = rows[i]
                    on_tokens(i, torch.stack([state["tok"][k][r, p:len(seq)]
                                             for k in range(len(which))], 1).cpu())
            if progress:
                progress(len(idx))
    finally:
        for h in handles:
            h.remove()
    return (out, tokens) if per_token else out
