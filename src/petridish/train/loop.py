"""The training loop: assistant-token loss, LM head only where there is a label, logs per step."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field

from petridish.names import TABLE
from petridish.train.tokens import IGNORE, TrainRow


class TrainSettings(BaseModel):
    """Optimisation settings; fp32 + AdamW on CPU."""

    model_config = TABLE

    lr: float = Field(1e-3, gt=0, description="peak learning rate")
    epochs: int = Field(1, gt=0)
    batch_size: int = Field(8, gt=0)
    grad_accum: int = Field(1, gt=0, description="batches per optimiser step")
    schedule: str = Field("linear", pattern="^(linear|cosine|constant)$")
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="bf16 = autocast matmuls; weights and optimiser stay fp32")
    seed: int = 0


@dataclass
class StepLog:
    """One optimiser step: what the store's training log records."""

    step: int
    epoch: float
    loss: float
    lr: float
    grad_norm: float
    tokens: int
    adapters: dict[str, dict[str, float]] = field(default_factory=dict)


def batches(rows: list[TrainRow], settings: TrainSettings, epoch: int) -> Iterator[list[TrainRow]]:
    """Seeded shuffle, then length bucketing inside windows so batches carry little padding."""
    gen = torch.Generator().manual_seed(settings.seed * 1000 + epoch)
    order = torch.randperm(len(rows), generator=gen).tolist()
    window = settings.batch_size * 16
    chunks: list[list[int]] = []
    for start in range(0, len(order), window):
        part = sorted(order[start : start + window], key=lambda i: len(rows[i].input_ids))
        size = settings.batch_size
        chunks += [part[j : j + size] for j in range(0, len(part), size)]
    for k in torch.randperm(len(chunks), generator=gen).tolist():
        yield [rows[i] for i in chunks[k]]


def collate(batch: list[TrainRow], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded `input_ids`, `attention_mask`, `labels` (each `[B, T]`)."""
    width = max(len(r.input_ids) for r in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, IGNORE)
    for i, r in enumerate(batch):
        n = len(r.input_ids)
        ids[i, :n] = torch.tensor(r.input_ids)
        mask[i, :n] = 1
        labels[i, :n] = torch.tensor(r.labels)
    return ids, mask, labels


def label_loss(model: Any, ids: torch.Tensor, mask: torch.Tensor,
               labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed next-token loss over labelled positions; the LM head runs only there."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = inner.model(input_ids=ids, attention_mask=mask).last_hidden_state
    target = labels[:, 1:]
    where = target != IGNORE
    logits = inner.lm_head(hidden[:, :-1][where]).float()
    loss = torch.nn.functional.cross_entropy(logits, target[where], reduction="sum")
    return loss, int(where.sum())


def _schedule(settings: TrainSettings, total: int) -> Callable[[int], float]:
    warm = max(1, int(settings.warmup_ratio * total)) if settings.warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if settings.schedule == "constant":
            return 1.0
        progress = (step - warm) / max(1, total - warm)
        if settings.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        return max(0.0, 1 - progress)

    return factor


def trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}


def train(
    model: torch.nn.Module,
    rows: list[TrainRow],
    settings: TrainSettings,
    pad_id: int,
    on_step: Callable[[StepLog], None] | None = None,
    *,
    resume: dict[str, Any] | None = None,
    every: int | None = None,
    on_state: Callable[[int, dict[str, Any]], None] | None = None,
    on_resumed: Callable[[], None] | None = None,
) -> list[StepLog]:
    """Train the parameters that require grad; returns one log entry per optimiser step run.

    Every `every` steps `on_state(step, state)` receives all a resumed run needs (trainable
    weights, optimiser, scheduler, RNG, position in the data order); `resume` is such a state:
    training continues after it as if it had never stopped."""
    torch.manual_seed(settings.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    per_epoch = math.ceil(math.ceil(len(rows) / settings.batch_size) / settings.grad_accum)
    total = per_epoch * settings.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(settings, total))
    step, start_epoch, start_batch = 0, 0, 0
    if resume is not None:
        with torch.no_grad():
            named = dict(model.named_parameters())
            for k, v in resume["params"].items():
                named[k].copy_(v)
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        torch.set_rng_state(resume["rng"])
        step, start_epoch, start_batch = resume["step"], resume["epoch"], resume["batch"]
        if on_resumed is not None:
            on_resumed()
    model.train()
    logs: list[StepLog] = []
    for epoch in range(start_epoch, settings.epochs):
        group: list[list[TrainRow]] = []
        all_batches = list(batches(rows, settings, epoch))  # the seeded order: same on resume
        for b_index, batch in enumerate(all_batches):
            if epoch == start_epoch and b_index < start_batch:
                continue
            group.append(batch)
            if len(group) < settings.grad_accum and b_index < len(all_batches) - 1:
                continue
            n_tokens = sum(sum(1 for x in r.labels[1:] if x != IGNORE) for b in group for r in b)
            total_loss = 0.0
            for b in group:
                device = next(model.parameters()).device.type
                with torch.autocast(device, dtype=torch.bfloat16,
                                    enabled=settings.precision == "bf16"):
                    loss, _ = label_loss(model, *collate(b, pad_id))
                (loss / max(1, n_tokens)).backward()
                total_loss += float(loss.detach())
            norm = float(torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm))
            lr = float(sched.get_last_lr()[0])
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            log = StepLog(step, epoch + (b_index + 1) / len(all_batches),
                          total_loss / max(1, n_tokens), lr, norm, n_tokens)
            logs.append(log)
            if on_step is not None:
                on_step(log)
            group = []
            if every and on_state is not None and step % every == 0:
                at_end = b_index + 1 == len(all_batches)
                on_state(step, {"params": trainable(model), "optimizer": opt.state_dict(),
                                "scheduler": sched.state_dict(), "rng": torch.get_rng_state(),
                                "step": step, "epoch": epoch + 1 if at_end else epoch,
                                "batch": 0 if at_end else b_index + 1})
    model.eval()
    return logs
