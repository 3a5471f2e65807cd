"""An encoder's judging rate against the bundled MiniLM's, in the same run (2 threads here).

`python datasets/judge_validation/explore/speed.py [--encoder DIR]` encodes the same 320 real
held-out (question, answer) pairs with a MiniLM judge network and with one on DIR (e.g. the
all-mpnet-base-v2 folder), in the precision in use (`PETRIDISH_JUDGE_PRECISION`), three rounds
each in turn, and prints pairs/s and the ratio. One pass gives every rubric of a network, so
judgments/s for six rubrics is six times pairs/s.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cache import LABELS, encoder_at

from petridish.judges.encoder import ScoreNet, encode, precision
from petridish.judges.rows import read_rows
from petridish.judges.train_offline import RUBRICS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rows = read_rows(LABELS / "real_heldout.jsonl")[:320]
    q, a = [r["question"] for r in rows], [r["answer"] for r in rows]
    nets = {}
    for name, folder in (("MiniLM-L6 (baseline)", None), (args.encoder.name, args.encoder)):
        encoder, tok = encoder_at(folder)
        nets[name] = (ScoreNet(encoder, RUBRICS), tok)
    for net, tok in nets.values():
        encode(net, tok, q[:32], a[:32])  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in nets}
    for _ in range(args.rounds):
        for name, (net, tok) in nets.items():
            t = time.perf_counter()
            encode(net, tok, q, a)
            rates[name].append(len(rows) / (time.perf_counter() - t))
    base, other = (sorted(rates[n])[len(rates[n]) // 2] for n in nets)
    for name, r in rates.items():
        print(f"{name}: {sorted(r)[len(r) // 2]:.1f} pairs/s (median of {len(r)}), {precision()}")
    print(f"ratio {args.encoder.name} / MiniLM: {other / base:.3f}")


if __name__ == "__main__":
    main()
