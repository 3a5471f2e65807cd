"""The arithmetic the 200-judgments/s bar asks of an encoder, from its shape alone.

`python datasets/judge_validation/explore/flops.py` tokenizes the throughput benchmark's 512
(question, answer) pairs (`benchmarks/judging.py`) as each judge network does and counts the
encoder's floating-point operations a pair (per layer: 2·(4d² + 2df) a token for the
projections and the MLP, 4t²d for attention; embeddings, norms and the head left out, so a
lower bound). 200 judgments/s for six rubrics is 33.3 pairs/s, one encoder pass each.
Compare with what a CPU delivers: pairs/s measured by the benchmark × GFLOP a pair.
"""

from __future__ import annotations

import sys
from pathlib import Path

from transformers import AutoConfig, AutoTokenizer

from petridish.judges.encoder import tokenize_pairs
from petridish.judges.encoders import DOWNLOADED, MINILM, encoder_folder

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from judging import pairs  # noqa: E402

BAR = 200 / 6  # pairs/s: six rubrics come from one pass


def main() -> None:
    items = pairs(512)
    for name in (MINILM, *DOWNLOADED):
        try:
            path = encoder_folder(name)
        except Exception as e:  # not installed: say so, go on
            print(f"{name}: {e}")
            continue
        tok, cfg = AutoTokenizer.from_pretrained(path), AutoConfig.from_pretrained(path)
        batch = tokenize_pairs(tok, [i.question for i in items], [i.answer for i in items])
        lens = batch["attention_mask"].sum(1).tolist()
        d, layers, f = cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size
        flops = [layers * (2 * (4 * d * d + 2 * d * f) * t + 4 * t * t * d) for t in lens]
        per = sum(flops) / len(flops) / 1e9
        print(f"{name}: {sum(lens) / len(lens):.0f} tokens a pair, {per:.2f} GFLOP a pair; "
              f"200 judgments/s needs {per * BAR:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
