"""Retrain the offline judge on our labelled items: frozen-encoder heads vs LoRA fine-tuning,
each scored on a dev split carved from the training file; the better one is saved."""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from petridish.judges.decisions import TRUTH_CUT
from petridish.judges.encoder import ScoreNet, precision, predict, tokenize_pairs
from petridish.judges.encoders import MINILM
from petridish.judges.offline import (
    ENCODER_TARGETS,
    LORA_TARGETS,
    META,
    WEIGHTS,
    build_net,
    copy_network,
    judge_id,
    load_network,
    remove_reader,
    single_id,
    trainable_state,
)
from petridish.judges.operating import Calibration, choose_cut
from petridish.judges.rows import is_real
from petridish.judges.rubrics import load_rubric
from petridish.judges.stack import READER, STACK, Stack, fit_stack, raw_scores
from petridish.judges.validate import Agreement, agreement, file_sha, validation_of
from petridish.paths import atomic_save_tensors, atomic_write, home

RUBRICS = ("alignment", "coherence", "bad_stuff", "medical", "finance", "gender")
WEIGHT = {"alignment": 2.0, "coherence": 2.0}  # the EM rubrics count double in the loss


@dataclass(frozen=True)
class RetrainSettings:
    lora_rank: int = 16
    epochs: int = 8
    batch_size: int = 16
    lr: float = 4e-4
    head_lr: float = 2e-3
    dev_share: float = 0.15
    seed: int = 0
    real_weight: float = 2.0  # real model answers count more: they are what the judge meets
    rubrics: tuple[str, ...] = RUBRICS  # one head each (selfdesc's judge has its own four)
    stack: bool = False  # then fit trees re-scoring alignment and coherence (judges.stack)
    encoder: str = MINILM  # the judge's base (judges.encoders); a downloaded one trains LoRA only
    lora_targets: tuple[str, ...] | None = None  # None: the encoder's own (ENCODER_TARGETS)
    variants: tuple[str, ...] = ("frozen", "lora")  # the candidates kept-the-better-of on dev
    autocast: bool = False  # bf16 autocast in LoRA training (how offline-large was trained;
    # only where bf16 is native: emulated, one mpnet step took 457 s against fp32's 21-33)
    coherence_focus: float = 1.0  # coherence loss × this on real answers labelled misaligned:
    # the EM decision turns on coherence there, and that is where the judge's EM errors are


def targets_of(s: RetrainSettings) -> list[str]:
    """The LoRA targets a retrain asks for, else its encoder's own."""
    return list(s.lora_targets or ENCODER_TARGETS.get(s.encoder, LORA_TARGETS))


def dev_split(rows: list[dict[str, Any]], share: float) -> tuple[list[int], list[int]]:
    """(train, dev) indices split by question, so dev questions are unseen in training."""
    def h(q: str) -> float:
        return int(hashlib.sha256(q.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    dev = [i for i, r in enumerate(rows) if h(r["question"]) < share]
    train = [i for i, r in enumerate(rows) if h(r["question"]) >= share]
    return train, dev


def targets(rows: Sequence[dict[str, Any]], real_weight: float = 2.0,
            rubrics: Sequence[str] = RUBRICS, coherence_focus: float = 1.0
            ) -> tuple[Tensor, Tensor]:
    """[n, rubrics] targets in 0..1 and loss weights (0 where a label is missing; × the row's
    own `weight` if it has one; coherence × `coherence_focus` on real answers whose alignment
    label is below the EM cut)."""
    y = torch.tensor([[float(r.get(k) or 0.0) / 100 for k in rubrics] for r in rows])
    mask = torch.tensor([[r.get(k) is not None for k in rubrics] for r in rows]).float()
    real = torch.tensor([(real_weight if is_real(r) else 1.0) * float(r.get("weight", 1.0))
                         for r in rows])
    weights = mask * real[:, None]
    if "coherence" in rubrics and coherence_focus != 1.0:
        below = TRUTH_CUT["alignment_below"]
        focus = torch.tensor([is_real(r) and r.get("alignment") is not None
                              and float(r["alignment"]) < below for r in rows])
        weights[focus, list(rubrics).index("coherence")] *= coherence_focus
    return y, weights


def loss_fn(logits: Tensor, y: Tensor, mask: Tensor, rubrics: Sequence[str] = RUBRICS) -> Tensor:
    w = torch.tensor([WEIGHT.get(k, 1.0) for k in rubrics]) * mask
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return (bce * w).sum() / w.sum()


def evaluate(net: ScoreNet, tokenizer: Any, rows: Sequence[dict[str, Any]]) -> list[Agreement]:
    scores = predict(net, tokenizer, [r["question"] for r in rows], [r["answer"] for r in rows])
    return [agreement(load_rubric(k), [r.get(k) for r in rows], scores[:, j].tolist())
            for j, k in enumerate(net.rubrics)]


def dev_score(figures: list[Agreement]) -> float:
    """Model selection: mean of alignment and coherence AUROC plus the mean Spearman rho of
    the rubrics the dev rows label."""
    by = {a.rubric: a for a in figures}
    em: list[str] = [k for k in ("alignment", "coherence") if k in by] or list(by)  # else all
    aurocs = [by[k].auroc or 0.0 for k in em]
    rhos = [a.spearman for a in figures if a.n and a.spearman is not None]
    return sum(aurocs) / len(aurocs) + (sum(rhos) / len(rhos) if rhos else 0.0)


def select_score(net: ScoreNet, tokenizer: Any, devs: Sequence[Sequence[dict[str, Any]]],
                 log: Callable[[str], None], label: str) -> float:
    """The sum of `dev_score` over the dev sets (carved written dev, real dev if given)."""
    total = 0.0
    for name, dev in zip(("dev", "real dev"), devs, strict=False):
        figures = evaluate(net, tokenizer, dev)
        score = dev_score(figures)
        log(f"{label}: {name} score {score:.3f} " + _brief(figures))
        total += score
    return total


def fit_frozen(rows: list[dict[str, Any]], s: RetrainSettings,
               devs: Sequence[Sequence[dict[str, Any]]],
               log: Callable[[str], None]) -> tuple[ScoreNet, Any, float]:
    """Baseline: embed once with the frozen encoder, fit only the head (full batch)."""
    torch.manual_seed(s.seed)
    net, tokenizer = build_net(s.rubrics, None, s.encoder)
    x = embed_all(net, tokenizer, rows)
    y, mask = targets(rows, s.real_weight, s.rubrics, s.coherence_focus)
    opt = torch.optim.AdamW(net.head.parameters(), lr=1e-2, weight_decay=1e-3)
    net.train()
    for _ in range(500):
        loss = loss_fn(net.head(x), y, mask, s.rubrics)
        opt.zero_grad()
        loss.backward()
        opt.step()
    score = select_score(net, tokenizer, devs, log, f"frozen (loss {loss.item():.4f})")
    return net, tokenizer, score


@torch.no_grad()
def embed_all(net: ScoreNet, tokenizer: Any, rows: Sequence[dict[str, Any]]) -> Tensor:
    net.eval()
    chunks = []
    for b in range(0, len(rows), 32):
        batch = tokenize_pairs(tokenizer, [r["question"] for r in rows[b:b + 32]],
                               [r["answer"] for r in rows[b:b + 32]])
        chunks.append(net.embed(batch))
    return torch.cat(chunks)


def _brief(figures: list[Agreement]) -> str:
    return " ".join(f"{a.rubric}={a.auroc or 0:.2f}/{a.spearman or 0:.2f}" for a in figures)


def bucketed(rows: Sequence[dict[str, Any]], size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar answer length (little padding), in shuffled order."""
    order = list(range(len(rows)))
    rng.shuffle(order)
    batches = []
    for m in range(0, len(order), size * 8):
        chunk = sorted(order[m:m + size * 8], key=lambda i: len(rows[i]["answer"]))
        batches += [chunk[b:b + size] for b in range(0, len(chunk), size)]
    rng.shuffle(batches)
    return batches


def fit_lora(rows: list[dict[str, Any]], s: RetrainSettings,
             devs: Sequence[Sequence[dict[str, Any]]],
             log: Callable[[str], None]) -> tuple[ScoreNet, Any, float]:
    """LoRA on every encoder matrix plus the head; returns the best dev epoch's network."""
    torch.manual_seed(s.seed)
    net, tokenizer = build_net(s.rubrics, s.lora_rank, s.encoder, targets_of(s))
    y, mask = targets(rows, s.real_weight, s.rubrics, s.coherence_focus)
    head = list(net.head.parameters())
    body = [p for n, p in net.named_parameters() if p.requires_grad and not n.startswith("head.")]
    groups: list[dict[str, Any]] = [{"params": head, "lr": s.head_lr},
                                    {"params": body, "lr": s.lr}]
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    steps = s.epochs * math.ceil(len(rows) / s.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g["lr"] for g in groups], total_steps=steps, pct_start=0.1)
    rng = random.Random(s.seed)
    best, best_state = -math.inf, trainable_state(net)
    for epoch in range(s.epochs):
        net.train()
        total = 0.0
        for idx in bucketed(rows, s.batch_size, rng):
            batch = tokenize_pairs(tokenizer, [rows[i]["question"] for i in idx],
                                   [rows[i]["answer"] for i in idx])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=s.autocast):
                logits = net(batch)
            loss = loss_fn(logits.float(), y[idx], mask[idx], s.rubrics)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        score = select_score(net, tokenizer, devs, log,
                             f"lora epoch {epoch + 1} (loss {total / len(rows):.4f})")
        if score > best:
            best, best_state = score, trainable_state(net)
    net.load_state_dict(best_state, strict=False)
    return net, tokenizer, best


def retrain(train_path: Path, heldouts: Sequence[Path] = (), out: Path | None = None,
            settings: RetrainSettings | None = None, log: Callable[[str], None] = print,
            dev_path: Path | None = None, network: Path | None = None,
            reader: Path | None = None) -> dict[str, Any]:
    """Train both variants, keep the better on dev (the written dev carved from training, plus
    real `dev_path` answers when given), or reuse `network`'s; fit the stacked trees when
    asked (reading `reader`'s network too, when given); choose the EM cut on `dev_path`; save
    weights + meta, then the figures on each held-out file."""
    from petridish.judges.rows import read_rows

    s = settings or RetrainSettings()
    out = out or home() / "judges" / "offline"  # the shipped folder only when named
    rows = read_rows(train_path, labels=list(s.rubrics))
    real_dev = read_rows(dev_path, labels=list(s.rubrics)) if dev_path else []
    if network is None:
        net, tokenizer, meta = fit_network(rows, real_dev, s, log)
        meta["train_labels_sha"] = file_sha(train_path)
        weights = trainable_state(net)
    else:
        net, tokenizer, kept = load_network(network)  # without its trees, if it has any
        meta = {k: kept[k] for k in ("variant", "lora_rank", "encoder", "lora_targets",
                                     "rubrics", "settings", "train_labels_sha", "dev_scores")
                if k in kept}
        meta["network_from"] = single_id(network)
        weights = load_weights(network)
        log(f"network of {meta['network_from']} kept as it is")
    meta["settings"] = {**meta.get("settings", {}), "stack": s.stack, "seed": s.seed}
    meta["precision"] = precision()  # of the features the trees and the cut were fitted on
    stack = None
    if s.stack:
        read = load_network(reader)[0] if reader is not None else None
        stack = fit_stack(net, tokenizer, rows, read, s.seed)
        meta["stack"] = stack.meta() | {"train_labels_sha": file_sha(train_path),
                                        "items": len(rows)}
        if reader is not None:
            meta["stack"]["reader_from"] = single_id(reader)
        log(f"stacked trees for {', '.join(sorted(stack.forests))} on {len(rows)} items")
    calibration = Calibration({})
    if dev_path is not None:
        raw = score_rows(net, tokenizer, real_dev, Calibration({}), stack)
        cut, d = choose_cut(real_dev, raw)
        calibration = Calibration.from_cut(cut)
        meta["calibration"] = calibration.as_json()
        meta["em_cut"] = {**cut, "chosen_on": dev_path.name, "dev_sha": file_sha(dev_path),
                          "dev_precision": d.precision, "dev_recall": d.recall, "dev_f1": d.f1,
                          "dev_tp": d.tp, "dev_fp": d.fp}
        log(f"EM cut on {dev_path.name}: raw alignment < {cut['alignment_below']:g}, coherence "
            f"> {cut['coherence_above']:g} (precision {d.precision}, recall {d.recall})")
    out.mkdir(parents=True, exist_ok=True)
    if stack is not None and reader is not None:
        copy_network(reader, out / READER)  # its network and meta; its own trees stay behind
    else:
        remove_reader(out)  # never pair an old reader with new trees
    atomic_save_tensors(out / WEIGHTS, weights)
    if stack is not None:
        stack.save(out)
    else:
        (out / STACK).unlink(missing_ok=True)  # never pair old trees with new weights
    atomic_write(out / META, json.dumps(meta, indent=2))
    validations = [held_out_entry(judge_id(out), path, s.rubrics,
                                  lambda held: score_rows(net, tokenizer, held, calibration, stack))
                   for path in heldouts]
    if validations:
        meta["validation"] = validations[0]
        meta["validations"] = validations
        atomic_write(out / META, json.dumps(meta, indent=2))
    return meta


def fit_network(rows: list[dict[str, Any]], real_dev: list[dict[str, Any]], s: RetrainSettings,
                log: Callable[[str], None]) -> tuple[ScoreNet, Any, dict[str, Any]]:
    """Frozen heads and LoRA, each scored on the dev sets; the better one and its meta."""
    tr, dv = dev_split(rows, s.dev_share)
    train, dev = [rows[i] for i in tr], [rows[i] for i in dv]
    devs = [dev, real_dev] if real_dev else [dev]
    log(f"{len(train)} training items, {len(dev)} dev items"
        + (f", {len(real_dev)} real dev items" if real_dev else ""))
    fits = {"frozen": fit_frozen, "lora": fit_lora}
    results = {v: fits[v](train, s, devs, log) for v in s.variants}
    variant = max(results, key=lambda v: results[v][2])
    net, tokenizer, _ = results[variant]
    log(f"kept {variant} (dev score " + ", ".join(f"{v} {r[2]:.3f}" for v, r in results.items())
        + ")")
    lora = variant == "lora"
    return net, tokenizer, {
        "variant": variant, "lora_rank": s.lora_rank if lora else None,
        **({"encoder": s.encoder} if s.encoder != MINILM else {}),
        **({"lora_targets": targets_of(s)} if lora and s.encoder != MINILM else {}),
        "rubrics": {k: load_rubric(k).version for k in s.rubrics}, "settings": asdict(s),
        "dev_scores": {v: round(r[2], 4) for v, r in results.items()}}


def held_out_entry(judge: str, path: Path, rubric_names: Sequence[str],
                   score: Callable[[list[dict[str, Any]]], Sequence[dict[str, float | None]]]
                   ) -> dict[str, Any]:
    """A judge's validation on one held-out file as `meta.json` keeps it: the rubrics the file
    labels, per `group` when its rows have one, naming the file and the encoder precision."""
    from petridish.judges.rows import read_rows

    held = read_rows(path, labels=list(rubric_names))
    rubrics = [load_rubric(k) for k in rubric_names if any(r.get(k) is not None for r in held)]
    v = validation_of(judge, path, held, rubrics, score(held),
                      group_by="group" if any("group" in r for r in held) else None)
    return asdict(v) | {"labels": path.name, "precision": precision()}


def load_weights(folder: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    return {k: v.contiguous() for k, v in load_file(folder / WEIGHTS).items()}


def score_rows(net: ScoreNet, tokenizer: Any, rows: Sequence[dict[str, Any]],
               calibration: Calibration, stack: Stack | None = None
               ) -> list[dict[str, float | None]]:
    """One {rubric: calibrated score} per row (stacked trees first, when given)."""
    raw = raw_scores(net, tokenizer, [r["question"] for r in rows], [r["answer"] for r in rows],
                     stack)
    cols = {k: calibration.apply(k, raw[:, j].tolist()) for j, k in enumerate(net.rubrics)}
    return [{k: cols[k][i] for k in net.rubrics} for i in range(len(rows))]
