"""Two shipped judges averaged: does the MiniLM judge plus the mpnet LoRA read real text better
than either alone?

`python datasets/judge_validation/explore/ensemble.py [--cache DIR]` scores `offline` and
`offline-large` on every split (cached per judge), then for weights w of the large judge in
0, 0.1, …, 1 prints real-dev figures of the mean `(1 - w) * offline + w * large` (both on their
own calibrated scale, where 30 / 50 is each judge's EM cut). The weight is chosen on real dev
only (best alignment + coherence AUROC), the EM cut too (`choose_cut`); held-out figures are
printed for that weight alone, then for every weight as a record.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cache import DEFAULT_CACHE

from petridish.judges.backends import make_judge
from petridish.judges.operating import Calibration, choose_cut
from petridish.judges.rows import read_rows

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import variants  # noqa: E402  # the validation folder's variants.py: scores_of, figures

SPLITS = variants.SPLITS
Scores = list[dict[str, float | None]]


def cached_scores(spec: str, data: dict[str, list[dict[str, Any]]],
                  cache: Path) -> dict[str, Scores]:
    path = cache / f"ensemble_{spec}.json"
    if path.exists():
        got: dict[str, Scores] = json.loads(path.read_text())
        return got
    judge = make_judge(spec)
    got = {s: variants.scores_of(judge, rows) for s, rows in data.items()}
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(got))
    return got


def mix(a: Scores, b: Scores, w: float) -> Scores:
    return [{k: None if x[k] is None or y[k] is None else (1 - w) * x[k] + w * y[k]  # type: ignore[operator]
             for k in x} for x, y in zip(a, b, strict=True)]


def dev_key(rows: list[dict[str, Any]], scores: Scores) -> float:
    from petridish.judges.rubrics import load_rubric
    from petridish.judges.validate import agreement

    return sum(agreement(load_rubric(k), [r.get(k) for r in rows], [s[k] for s in scores]).auroc
               or 0.0 for k in ("alignment", "coherence"))


def with_cut(rows: dict[str, list[dict[str, Any]]],
             scored: dict[str, Scores]) -> tuple[str, dict[str, Scores]]:
    cut, _ = choose_cut(rows["real_dev"], scored["real_dev"])
    cal = Calibration.from_cut(cut)
    moved = {s: [{k: None if v is None else cal.apply(k, [v])[0] for k, v in sc.items()}
                 for sc in scored[s]] for s in SPLITS}
    return f"< {cut['alignment_below']:g}, > {cut['coherence_above']:g}", moved


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args()
    data = {s: read_rows(variants.LABELS / f"{s}.jsonl") for s in SPLITS}
    small = cached_scores("offline", data, args.cache)
    large = cached_scores("offline-large", data, args.cache)
    weights = [round(0.1 * i, 1) for i in range(11)]
    keys = {w: dev_key(data["real_dev"], mix(small["real_dev"], large["real_dev"], w))
            for w in weights}
    best = max(weights, key=lambda w: keys[w])
    print(f"weight chosen on real dev: {best} (alignment + coherence AUROC {keys[best]:.3f})")
    print("| large weight | EM cut (real dev) | split | alignment AUROC / ρ | "
          "coherence AUROC / ρ | EM precision / recall |")
    print("|---|---|---|---|---|---|")
    for w in [best] + [w for w in weights if w != best]:
        scored = {s: mix(small[s], large[s], w) for s in SPLITS}
        label, moved = with_cut(data, scored)
        for s in SPLITS:
            print(f"| {w}{' (chosen)' if w == best else ''} | {label} | {s} | "
                  f"{variants.figures(data[s], moved[s])} |")


if __name__ == "__main__":
    main()
