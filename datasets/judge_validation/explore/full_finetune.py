"""Fine-tune every weight of an encoder as a judge network (not LoRA): an exploration.

`python datasets/judge_validation/explore/full_finetune.py --output DIR [--encoder PATH]`
trains on `builtin:train` as `petridish judge retrain --real-weight 6` does (same targets,
loss, length buckets and 15 % written dev split), but with the whole encoder trainable under
bf16 autocast (where the CPU has it natively), the head at its own rate and a one-cycle
schedule. After each epoch it prints written-dev and real-dev AUROC / rho and saves
`DIR/epN.pt`; at the end, the network alone on every validation split. `--encoder` is a
sentence-transformers folder (default: the bundled MiniLM); the README's "fully fine-tuned"
rows come from this script. `--lora RANK` trains a LoRA instead, to compare with the full
fine-tune on the same encoder.
"""

from __future__ import annotations

import argparse
import copy
import math
import random
from pathlib import Path

import torch
from cache import encoder_at
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file

from petridish.judges.encoder import ScoreNet, precision, tokenize_pairs
from petridish.judges.offline import LORA_TARGETS, trainable_state
from petridish.judges.rows import read_rows
from petridish.judges.train_offline import RUBRICS, bucketed, dev_split, evaluate, loss_fn, targets

LABELS = Path(__file__).resolve().parents[3] / "src/petridish/data/builtin/judge_labels"
SPLITS = ("heldout", "real_dev", "real_heldout")


def brief(net: ScoreNet, tok: object, rows: list[dict[str, object]]) -> str:
    return "  ".join(f"{a.rubric} {a.auroc:.3f} / {a.spearman:.3f}"
                     for a in evaluate(net, tok, rows) if a.rubric in ("alignment", "coherence"))


def plain_state(net: ScoreNet, lora: bool) -> dict[str, torch.Tensor]:
    """The state dict of a plain ScoreNet (LoRA merged into a copy), which trees.py loads."""
    if not lora:
        return net.state_dict()
    merged = copy.deepcopy(net.encoder).merge_and_unload()
    return {**{f"encoder.{k}": v for k, v in merged.state_dict().items()},
            **{f"head.{k}": v for k, v in net.head.state_dict().items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, required=True)
    ap.add_argument("--encoder", type=Path, default=None)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=3e-5, help="encoder rate (head: 2e-3)")
    ap.add_argument("--real-weight", type=float, default=6.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lora", type=int, default=0, metavar="RANK",
                    help="train a LoRA of this rank instead of every weight (for comparison; "
                         "give --lr 4e-4 as retrain does)")
    a = ap.parse_args()
    a.output.mkdir(parents=True, exist_ok=True)
    rows_all = read_rows(LABELS / "train.jsonl", labels=list(RUBRICS))
    tr, dv = dev_split(rows_all, 0.15)
    rows, wdev = [rows_all[i] for i in tr], [rows_all[i] for i in dv]
    rdev = read_rows(LABELS / "real_dev.jsonl", labels=list(RUBRICS))
    torch.manual_seed(0)
    encoder, tok = encoder_at(a.encoder)
    if a.lora:  # MPNet names its attention matrices q/k/v/o, BERT query/key/value
        names = {n.split(".")[-1] for n, _ in encoder.named_modules()}
        targets_ = [t for t in ("q", "k", "v", "o") if t in names] or LORA_TARGETS[:3]
        encoder = get_peft_model(encoder, LoraConfig(
            r=a.lora, lora_alpha=2 * a.lora, lora_dropout=0.1, bias="none",
            target_modules=[*targets_, "dense"]))
    else:
        encoder.requires_grad_(True)
    net = ScoreNet(encoder, RUBRICS)
    y, mask = targets(rows, a.real_weight)
    groups = [{"params": list(net.head.parameters()), "lr": 2e-3},
              {"params": [p for p in net.encoder.parameters() if p.requires_grad], "lr": a.lr}]
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    steps = a.epochs * math.ceil(len(rows) / a.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups],
                                                total_steps=steps, pct_start=0.1)
    rng = random.Random(0)
    native = precision() == "bf16"  # emulated bf16 is 15-20x slower than fp32, not faster
    for ep in range(1, a.epochs + 1):
        net.train()
        total = 0.0
        for idx in bucketed(rows, a.batch, rng):
            b = tokenize_pairs(tok, [rows[i]["question"] for i in idx],
                               [rows[i]["answer"] for i in idx])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=native):
                out = net(b)
            loss = loss_fn(out.float(), y[idx], mask[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"epoch {ep} loss {total / len(rows):.4f} | written dev {brief(net, tok, wdev)}"
              f" | real dev {brief(net, tok, rdev)}", flush=True)
        torch.save(plain_state(net, bool(a.lora)), a.output / f"ep{ep}.pt")
        if a.lora:  # what a shipped judge holds: the LoRA matrices and the head
            save_file(trainable_state(net), a.output / f"ep{ep}.adapter.safetensors")
    for s in SPLITS:
        print(f"alone {s}: {brief(net, tok, read_rows(LABELS / f'{s}.jsonl'))}", flush=True)


if __name__ == "__main__":
    main()
