"""What a checkpoint's forward pass says about a training example: its residual stream (every
layer's mean over the reply tokens, the tokens the loss is on) and its loss. One pass gives
both, so a probe and the membership-inference baseline see the same examples."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from petridish.interp.activations import decoder_layers
from petridish.models.loader import LoadedModel
from petridish.train.tokens import IGNORE, TrainRow


@torch.inference_mode()
def features(lm: LoadedModel, rows: Sequence[TrainRow],
             batch_size: int = 16) -> tuple[Tensor, Tensor]:
    """(`[n, layers, d]` fp32 reply-token means, `[n]` mean token loss on the reply)."""
    model = lm.model
    blocks = decoder_layers(model)
    n, d = len(rows), int(model.config.hidden_size)
    acts, loss = torch.zeros(n, len(blocks), d), torch.zeros(n)
    state: dict[str, Any] = {}

    def hook(k: int) -> Any:
        def fn(module: Any, args: Any, output: Any) -> None:
            h = (output[0] if isinstance(output, tuple) else output).float()
            m = state["mask"]
            acts[state["idx"], k] = ((h * m).sum(1) / m.sum(1)).cpu()
        return fn

    handles = [b.register_forward_hook(hook(k)) for k, b in enumerate(blocks)]
    order = sorted(range(n), key=lambda i: len(rows[i].input_ids))
    try:
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            width = max(len(rows[i].input_ids) for i in idx)
            ids = torch.full((len(idx), width), int(lm.tokenizer.pad_token_id or 0))
            labels = torch.full((len(idx), width), IGNORE)
            attn = torch.zeros(len(idx), width, dtype=torch.long)
            for r, i in enumerate(idx):
                seq = rows[i].input_ids
                ids[r, :len(seq)] = torch.tensor(seq)
                labels[r, :len(seq)] = torch.tensor(rows[i].labels)
                attn[r, :len(seq)] = 1
            mask = (labels != IGNORE).unsqueeze(-1).float()
            state.update(idx=torch.tensor(idx), mask=mask.to(lm.device))
            logits = model(input_ids=ids.to(lm.device), attention_mask=attn.to(lm.device)).logits
            target = labels[:, 1:].to(lm.device)
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().transpose(1, 2), target, ignore_index=IGNORE,
                reduction="none")  # [b, t - 1]
            counted = (target != IGNORE).sum(1).clamp(min=1)
            loss[torch.tensor(idx)] = (nll.sum(1) / counted).cpu()
    finally:
        for h in handles:
            h.remove()
    return acts, loss
