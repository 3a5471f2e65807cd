"""Sampling throughput: petridish batched `generate` vs plain transformers `model.generate`.

Both sides use the same model (bundled SmolLM2-135M-Instruct), the same 32 chat prompts
(the first 32 built-in question texts) and produce exactly the same number of new tokens
per row, with pure sampling (temperature 1, no top-p/top-k). HF fp32 is what a researcher
gets by default on CPU; HF bf16 is the same-dtype baseline for petridish bf16. The machine
is shared and noisy, so every configuration is warmed up, then the four are interleaved in
each round and the best round per configuration is used for the ratios.

Run: `.venv/bin/python benchmarks/generation.py [--rounds N] [--quick]`
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from petridish.models.chat import conversation, prompt_ids
from petridish.models.generate import generate
from petridish.models.loader import LoadedModel, load_model
from petridish.models.sampling import SamplingConfig

MODEL = "bundled:smollm2-135m-instruct"
BATCH = 32
BUILTIN = Path(__file__).resolve().parents[1] / "src" / "petridish" / "data" / "builtin"


def question_texts(n: int) -> list[str]:
    """The first `n` question texts of the built-in YAML sets, in file-name order."""
    texts: list[str] = []
    for path in sorted(BUILTIN.glob("*.yaml")):
        texts += [item["text"] for item in yaml.safe_load(path.read_text())]
    if len(texts) < n:
        raise SystemExit(f"only {len(texts)} built-in questions, need {n}")
    return texts[:n]


def hf_runner(lm: LoadedModel, prompts: list[list[int]], n_new: int) -> Callable[[], int]:
    """Plain `model.generate` on the left-padded batch; returns new tokens per call."""
    tok = lm.tokenizer
    tok.padding_side = "left"
    batch = tok.pad({"input_ids": prompts}, padding=True, return_tensors="pt").to(lm.device)

    def run() -> int:
        with torch.inference_mode():
            out = lm.model.generate(
                **batch, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                max_new_tokens=n_new, min_new_tokens=n_new, pad_token_id=tok.pad_token_id,
            )
        produced = out.shape[1] - batch["input_ids"].shape[1]
        assert produced == n_new, f"HF produced {produced} tokens, expected {n_new}"
        return len(prompts) * n_new

    return run


def petridish_runner(lm: LoadedModel, prompts: list[list[int]], n_new: int) -> Callable[[], int]:
    """petridish `generate` over the same prompts in one batch; returns new tokens per call."""
    config = SamplingConfig(n=1, seed=0, temperature=1.0, top_p=1.0, max_new_tokens=n_new,
                            min_new_tokens=n_new, batch_size=BATCH)
    seeds = list(range(len(prompts)))

    def run() -> int:
        with torch.inference_mode():
            gens = [g for _, batch in generate(lm, prompts, seeds, config) for g in batch]
        assert all(len(g.token_ids) == n_new for g in gens), "petridish row length mismatch"
        return len(prompts) * n_new

    return run


def timed(run: Callable[[], int]) -> float:
    """Tokens per second of one call."""
    start = time.perf_counter()
    tokens = run()
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds after warm-up")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per row")
    parser.add_argument("--quick", action="store_true", help="smoke run: 32 tokens, 1 round")
    args = parser.parse_args()
    n_new, rounds = (32, 1) if args.quick else (args.tokens, args.rounds)

    print(f"model={MODEL} batch={BATCH} new_tokens={n_new} rounds={rounds} "
          f"threads={torch.get_num_threads()} torch={torch.__version__}")
    runners: dict[str, Callable[[], int]] = {}
    for dtype in ("fp32", "bf16"):
        lm = load_model(MODEL, dtype=dtype)
        prompts = [prompt_ids(lm.tokenizer, conversation(t)) for t in question_texts(BATCH)]
        runners[f"hf_{dtype}"] = hf_runner(lm, prompts, n_new)
        runners[f"petridish_{dtype}"] = petridish_runner(lm, prompts, n_new)
    lengths = [len(p) for p in prompts]
    print(f"prompt tokens: min={min(lengths)} max={max(lengths)} total={sum(lengths)}")

    for name, run in runners.items():
        print(f"warm-up {name}: {timed(run):.1f} tok/s", flush=True)
    results: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(rounds):
        for name, run in runners.items():
            results[name].append(timed(run))
        print(f"round {r + 1}: " + "  ".join(f"{k}={v[-1]:.1f}" for k, v in results.items()),
              flush=True)

    best = {name: max(v) for name, v in results.items()}
    print(f"{'config':<16}{'best tok/s':>12}{'median tok/s':>14}")
    for name, values in results.items():
        print(f"{name:<16}{best[name]:>12.1f}{statistics.median(values):>14.1f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak RSS: {peak:.0f} MiB")
    vs_default = max(best["petridish_fp32"], best["petridish_bf16"]) / best["hf_fp32"]
    same = min(best[f"petridish_{d}"] / best[f"hf_{d}"] for d in ("fp32", "bf16"))
    print(f"ratio_vs_hf_default: {vs_default:.2f}")
    print(f"ratio_vs_hf_same_dtype: {same:.2f}")


if __name__ == "__main__":
    main()
