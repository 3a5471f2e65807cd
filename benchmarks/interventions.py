"""Intervention overhead on the bundled model, each against its bare counterpart in the run.

1. Steered generation vs unsteered: petridish's sampler, 32 chat prompts, batch 32, exactly
   64 new tokens (min = max), temperature 1, fp32; steering adds `4 · v` at layers 10-14 at
   every position (a fixed random v). Goal: steered time ≤ 1.05× unsteered.
2. Activation capture vs a bare forward pass: `collect_activations` (every layer's mean over
   the answer tokens, via hooks) vs `model.model(ids, mask)` on the same 64 (question,
   answer) pairs, batch 8, same length-sorted batches. Goal: ≥ 0.9× the bare throughput.
Sides alternate each round; the best round per side counts (the machine is shared).

Run: `.venv/bin/python benchmarks/interventions.py [--rounds N]`
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from petridish.interp.activations import answer_rows, collect_activations
from petridish.interp.interventions import steer
from petridish.models.chat import conversation, prompt_ids
from petridish.models.generate import generate
from petridish.models.loader import LoadedModel, load_model
from petridish.models.sampling import SamplingConfig

LABELS = Path(__file__).resolve().parents[1] / "src/petridish/data/builtin/judge_labels"


def texts(n: int) -> tuple[list[str], list[str]]:
    rows = [json.loads(x) for x in (LABELS / "heldout.jsonl").read_text().splitlines()][:n]
    return [r["question"] for r in rows], [r["answer"] for r in rows]


def bare_forward(lm: LoadedModel, qs: list[str], ans: list[str], batch: int) -> None:
    rows = answer_rows(lm, qs, ans)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    with torch.inference_mode():
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            width = max(len(rows[i][0]) for i in idx)
            ids = torch.zeros(len(idx), width, dtype=torch.long)
            mask = torch.zeros(len(idx), width, dtype=torch.long)
            for r, i in enumerate(idx):
                ids[r, :len(rows[i][0])] = torch.tensor(rows[i][0])
                mask[r, :len(rows[i][0])] = 1
            lm.model.model(input_ids=ids, attention_mask=mask)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(2)
    lm = load_model("bundled:smollm2-135m-instruct", dtype="fp32")
    qs, ans = texts(64)
    prompts = [prompt_ids(lm.tokenizer, conversation(q)) for q in qs[:32]]
    cfg = SamplingConfig(n=1, temperature=1.0, max_new_tokens=64, min_new_tokens=64,
                         batch_size=32, seed=0)
    v = torch.randn(lm.model.config.hidden_size, generator=torch.Generator().manual_seed(0))

    def sample() -> None:
        for _ in generate(lm, prompts, list(range(32)), cfg):
            pass

    def steered() -> None:
        with steer(lm.model, v, [10, 11, 12, 13, 14], 4.0):
            sample()

    sample()
    collect_activations(lm, qs[:8], ans[:8])
    t_plain, t_steer, t_bare, t_acts = [], [], [], []
    for _ in range(args.rounds):
        for fn, out in ((sample, t_plain), (steered, t_steer),
                        (lambda: bare_forward(lm, qs, ans, 8), t_bare),
                        (lambda: collect_activations(lm, qs, ans, batch_size=8), t_acts)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    tokens = 32 * 64
    print(f"rounds: {args.rounds}, threads: {torch.get_num_threads()}")
    print(f"generation unsteered: {tokens / min(t_plain):7.1f} tok/s")
    print(f"generation steered:   {tokens / min(t_steer):7.1f} tok/s   (5 layers, all positions)")
    print(f"steered / unsteered time: {min(t_steer) / min(t_plain):.3f}   (goal ≤ 1.05)")
    print(f"bare forward:         {64 / min(t_bare):7.1f} responses/s")
    print(f"activation capture:   {64 / min(t_acts):7.1f} responses/s   (all 30 layers)")
    print(f"capture / bare throughput: {min(t_bare) / min(t_acts):.3f}   (goal ≥ 0.9)")


if __name__ == "__main__":
    main()
