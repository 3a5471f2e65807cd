"""int8 dynamic quantisation of a judge's encoder: pairs/s and how far the scores move.

`python datasets/judge_validation/explore/int8.py` loads the shipped judge networks (LoRA
merged; `offline-large` too when its encoder is installed), quantises every Linear of the
encoder to int8 with `torch.ao.quantization.quantize_dynamic` (weights int8, activations
quantised on the fly), and encodes 256 real held-out pairs with each, fp32 first, on 2
threads: pairs/s of each and the mean absolute difference of the six scores (0-100).
"""

from __future__ import annotations

import copy
import time

import torch
from cache import LABELS

from petridish.judges.encoder import encode
from petridish.judges.offline import FOLDER, LARGE_FOLDER, folder_encoder, load_network
from petridish.judges.rows import read_rows


def main() -> None:
    torch.set_num_threads(2)
    rows = read_rows(LABELS / "real_heldout.jsonl")[:256]
    q, a = [r["question"] for r in rows], [r["answer"] for r in rows]
    for folder in (FOLDER, LARGE_FOLDER):
        try:
            folder_encoder(folder)
        except Exception as e:  # offline-large's encoder not installed
            print(f"{folder.name}: {e}")
            continue
        net, tok, _ = load_network(folder)
        quant = copy.deepcopy(net)
        quant.encoder = torch.ao.quantization.quantize_dynamic(
            quant.encoder, {torch.nn.Linear}, dtype=torch.qint8)
        ref = None
        for name, model in (("fp32", net), ("int8", quant)):
            encode(model, tok, q[:32], a[:32])  # warm-up
            t = time.perf_counter()
            logits, _ = encode(model, tok, q, a)
            rate = len(q) / (time.perf_counter() - t)
            scores = torch.sigmoid(logits) * 100
            ref = scores if ref is None else ref
            print(f"{folder.name} {name}: {rate:.1f} pairs/s, mean |score - fp32's| "
                  f"{(scores - ref).abs().mean():.2f}")


if __name__ == "__main__":
    main()
