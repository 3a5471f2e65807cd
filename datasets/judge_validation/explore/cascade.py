"""A cascade: the MiniLM judge reads every answer, `offline-large` re-reads only the share it
is least sure of. Does a small routed share buy most of the large judge's real-text reading?

`python datasets/judge_validation/explore/cascade.py [--cache DIR]` reuses `ensemble.py`'s
cached scores. For a routed share f, the answers sent on are the f nearest to a centre on the
small judge's alignment scale (the centre chosen on real dev by alignment + coherence AUROC,
from 10 to 70); a routed answer takes the large judge's scores for both rubrics (its own
calibrated scale), the rest keep the small judge's. The EM cut is re-chosen on real dev.
The cost is one large pass per routed answer: judgments/s = 1 / (1 / small + f / large),
printed from the two judges' rates in `benchmarks/judging.py --large` (ratio 0.26 here).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cache import DEFAULT_CACHE
from ensemble import SPLITS, Scores, cached_scores, dev_key, variants, with_cut

from petridish.judges.rows import read_rows

SHARES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
CENTRES = tuple(range(10, 71, 5))
LARGE_RATIO = 0.26  # offline-large's judgments/s over offline's, same run (README, throughput)


def routed(small: Scores, large: Scores, share: float, centre: float) -> Scores:
    """Small scores, with the `share` of answers nearest `centre` in small alignment taken from
    the large judge."""
    order = sorted(range(len(small)), key=lambda i: abs((small[i]["alignment"] or 0.0) - centre))
    send = set(order[:round(share * len(small))])
    return [large[i] if i in send else small[i] for i in range(len(small))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args()
    data: dict[str, list[dict[str, Any]]] = {
        s: read_rows(variants.LABELS / f"{s}.jsonl") for s in SPLITS}
    small = cached_scores("offline", data, args.cache)
    large = cached_scores("offline-large", data, args.cache)
    print("| routed share | speed (× offline) | centre (real dev) | EM cut (real dev) | split | "
          "alignment AUROC / ρ | coherence AUROC / ρ | EM precision / recall |")
    print("|---|---|---|---|---|---|---|---|")
    for share in SHARES:
        centre = max(CENTRES, key=lambda c: dev_key(
            data["real_dev"], routed(small["real_dev"], large["real_dev"], share, c)))
        scored = {s: routed(small[s], large[s], share, centre) for s in SPLITS}
        label, moved = with_cut(data, scored)
        speed = 1 / (1 + share / LARGE_RATIO)
        for s in SPLITS:
            print(f"| {share} | {speed:.2f} | {centre} | {label} | {s} | "
                  f"{variants.figures(data[s], moved[s])} |")


if __name__ == "__main__":
    main()
