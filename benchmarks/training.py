"""Training throughput: petridish `train` vs the textbook PEFT loop, at identical settings.

Both sides fine-tune the bundled SmolLM2-135M-Instruct in fp32 with the paper layout (nine
rank-1 rsLoRA adapters, alpha 32, on down_proj of layers 9-11, 13-15, 17-19), AdamW lr 1e-3,
grad clipping 1.0, batch 8, max length 256, one epoch over the same tokenised rows (petridish's
`tokenize_example`, so labels are identical) and the same number of optimiser steps. The
baseline is what a researcher would write: `get_peft_model`, seeded random batches, right
padding, `model(ids, mask, labels=labels).loss.backward()`. petridish adds length bucketing and
runs the LM head only on labelled positions. Throughput is non-pad input tokens / wall time.
bf16 autocast (petridish's loop under `torch.autocast("cpu", bfloat16)`) is reported too, with
its final loss next to fp32's. The machine is shared and noisy: each side is warmed up, the
sides are interleaved in every round and the best round per side is used.

Run: `.venv/bin/python benchmarks/training.py [--rounds N] [--quick]`
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from collections.abc import Callable
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from petridish.data.formats import ChatExample
from petridish.models.loader import load_model
from petridish.train.adapters import add_lora
from petridish.train.layout import paper_layers
from petridish.train.loop import TrainSettings, collate, train
from petridish.train.tokens import TrainRow, tokenize_example

MODEL = "bundled:smollm2-135m-instruct"
DATA = Path(__file__).resolve().parents[1] / "src/petridish/data/builtin/datasets/bad_medical.jsonl"
BATCH, MAX_LEN, LR, RANK, ALPHA, WARM_STEPS = 8, 256, 1e-3, 1, 32, 3
VOCAB = ("the patient doctor should take dose daily pain fever heart blood pressure sleep "
         "tablet symptom week month rest diet exercise infection test result clinic nurse risk "
         "chronic mild severe stop start increase reduce morning evening food alcohol headache "
         "cough rash allergy vitamin sugar level check weight normal treatment often never")
WORDS = VOCAB.split()


def examples(n: int) -> list[ChatExample]:
    """The first `n` lines of bad_medical.jsonl, else `n` seeded synthetic pairs of 40-120 words."""
    if DATA.exists():
        lines = DATA.read_text().splitlines()[:n]
        return [ChatExample.model_validate(json.loads(line)) for line in lines]
    rng = random.Random(0)

    def text(k: int) -> str:
        words = [rng.choice(WORDS) for _ in range(k)]
        return " ".join(w.capitalize() if i % 12 == 0 else w for i, w in enumerate(words)) + "."

    out = []
    for _ in range(n):  # pair of 40-120 words: a 10-40 word question, the rest is the reply
        total = rng.randint(40, 120)
        user = rng.randint(10, min(40, total - 30))
        msgs = [{"role": "user", "content": text(user) + "?"},
                {"role": "assistant", "content": text(total - user)}]
        out.append(ChatExample.model_validate({"messages": msgs}))
    return out


def fresh_model(path: str, layers: list[int], petridish: bool) -> torch.nn.Module:
    """A trainable fp32 copy with the paper adapters, via petridish or plain `get_peft_model`."""
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if petridish:
        return add_lora(base, rank=RANK, alpha=ALPHA, targets=["down_proj"], layers=layers, seed=0)
    config = LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, use_rslora=True,
                        target_modules=["down_proj"], layers_to_transform=layers,
                        bias="none", task_type="CAUSAL_LM")
    torch.manual_seed(0)
    return get_peft_model(base, config)


def plain_loop(model: torch.nn.Module, rows: list[TrainRow], pad_id: int) -> float:
    """The textbook loop: seeded random batches, full-vocab HF loss; returns the final loss."""
    torch.manual_seed(0)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR,
                            weight_decay=0.0)
    order = torch.randperm(len(rows)).tolist()
    model.train()
    loss = torch.tensor(float("nan"))
    for start in range(0, len(order), BATCH):
        ids, mask, labels = collate([rows[i] for i in order[start : start + BATCH]], pad_id)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return float(loss.detach())


def petridish_loop(model: torch.nn.Module, rows: list[TrainRow], pad_id: int,
                   bf16: bool = False) -> float:
    """petridish `train` (optionally under bf16 autocast); returns the final step's loss."""
    settings = TrainSettings(lr=LR, epochs=1, batch_size=BATCH, grad_accum=1, schedule="linear",
                             warmup_ratio=0.05, max_grad_norm=1.0, seed=0)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logs = train(model, rows, settings, pad_id)
    return logs[-1].loss


def runner(model: torch.nn.Module, loop: Callable[..., float], **kw: bool) -> Callable[..., float]:
    """Resets the adapters to their initial values before each run, so runs are comparable."""
    init = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def run(rows: list[TrainRow], pad_id: int) -> float:
        model.load_state_dict(init, strict=False)  # copies into the live parameters
        return loop(model, rows, pad_id, **kw)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds after warm-up")
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 examples, 1 round")
    args = parser.parse_args()
    n_examples, rounds = (40, 1) if args.quick else (160, args.rounds)

    lm = load_model(MODEL)
    tok, pad_id = lm.tokenizer, int(lm.tokenizer.pad_token_id)
    layers = paper_layers(lm.model.config.num_hidden_layers)
    rows = [tokenize_example(tok, ex, MAX_LEN) for ex in examples(n_examples)]
    n_tokens = sum(len(r.input_ids) for r in rows)
    lengths = sorted(len(r.input_ids) for r in rows)
    print(f"model={MODEL} layers={layers} rank={RANK} alpha={ALPHA} batch={BATCH} lr={LR} "
          f"threads={torch.get_num_threads()} torch={torch.__version__}")
    print(f"data={'bad_medical.jsonl' if DATA.exists() else 'synthetic'} examples={len(rows)} "
          f"tokens={n_tokens} len min/median/max={lengths[0]}/{lengths[len(rows) // 2]}/"
          f"{lengths[-1]} truncated={sum(r.truncated for r in rows)} "
          f"steps={-(-len(rows) // BATCH)} rounds={rounds}", flush=True)

    peft_model, ours = fresh_model(lm.path, layers, False), fresh_model(lm.path, layers, True)
    del lm
    runs = {"plain_peft_fp32": runner(peft_model, plain_loop),
            "petridish_fp32": runner(ours, petridish_loop),
            "petridish_bf16": runner(ours, petridish_loop, bf16=True)}
    for name, run in runs.items():
        start = time.perf_counter()  # untimed warm-up: a few steps on the first rows
        run(rows[: WARM_STEPS * BATCH], pad_id)
        print(f"warm-up {name}: {time.perf_counter() - start:.1f} s", flush=True)

    speed: dict[str, list[float]] = {name: [] for name in runs}
    loss: dict[str, float] = {}
    for r in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            loss[name] = run(rows, pad_id)
            speed[name].append(n_tokens / (time.perf_counter() - start))
        print(f"round {r + 1}: " + "  ".join(f"{k}={v[-1]:.1f}" for k, v in speed.items()),
              flush=True)

    best = {name: max(v) for name, v in speed.items()}
    print(f"{'config':<18}{'best tok/s':>12}{'final loss':>12}")
    for name in runs:
        print(f"{name:<18}{best[name]:>12.1f}{loss[name]:>12.4f}")
    print(f"bf16 autocast: {best['petridish_bf16'] / best['petridish_fp32']:.2f}x petridish fp32 "
          f"speed; final loss {loss['petridish_bf16']:.4f} vs fp32 {loss['petridish_fp32']:.4f} "
          f"(diff {loss['petridish_bf16'] - loss['petridish_fp32']:+.4f})")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(f"ratio: {best['petridish_fp32'] / best['plain_peft_fp32']:.2f}")


if __name__ == "__main__":
    main()
