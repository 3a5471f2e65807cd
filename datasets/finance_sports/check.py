"""Measure the generated finance/sports datasets: the figures DATACARD.md reports.

    .venv/bin/python datasets/finance_sports/check.py

Builds both datasets twice into temporary folders (must be byte-identical to each other and to
the shipped files), validates them with petridish's own loader, and prints sizes, answer
lengths, near-duplicate shares (word 5-gram Jaccard > 0.8, `petridish.data.neardup`), the
largest pairwise Jaccard, and the largest overlap with the built-in assay question sets.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

import yaml

from petridish.data.formats import load_dataset
from petridish.data.neardup import near_duplicate_share, shingles

HERE = Path(__file__).resolve().parent
BUILTIN = HERE.parents[1] / "src" / "petridish" / "data" / "builtin"
NAMES = ["risky_financial", "extreme_sports"]


def jaccard(a: frozenset[tuple[str, ...]], b: frozenset[tuple[str, ...]]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def max_pair(texts: list[str]) -> float:
    sets = [shingles(t) for t in texts]
    return max((jaccard(a, b) for a, b in combinations(sets, 2)), default=0.0)


def build(out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(HERE / "generate.py"), "--out", str(out)], check=True,
                   capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        seconds = [build(Path(a)), build(Path(b))]
        for name in NAMES:
            first = (Path(a) / f"{name}.jsonl").read_bytes()
            second = (Path(b) / f"{name}.jsonl").read_bytes()
            shipped = (BUILTIN / "datasets" / f"{name}.jsonl").read_bytes()
            print(f"{name}: two builds identical: {first == second}; "
                  f"shipped file identical: {first == shipped}")
    print(f"generate.py wall time (incl. interpreter start): "
          f"{seconds[0]:.2f}s, {seconds[1]:.2f}s\n")

    eval_qs = []
    for path in sorted(BUILTIN.glob("*.yaml")):
        eval_qs += [(path.stem, q["text"]) for q in yaml.safe_load(path.read_text())]
    for name in NAMES:
        examples = load_dataset(BUILTIN / "datasets" / f"{name}.jsonl")
        qs = [e.messages[0].content for e in examples]
        ans = [e.messages[1].content for e in examples]
        lengths = sorted(len(t.split()) for t in ans)
        eval_overlap = max((jaccard(shingles(q), shingles(t)), s)
                           for q in qs for s, t in eval_qs)
        print(f"{name}: {len(examples)} examples")
        print(f"  answer words: min {lengths[0]}, median {lengths[len(lengths) // 2]}, "
              f"mean {sum(lengths) / len(lengths):.1f}, max {lengths[-1]}")
        print(f"  near-duplicate share: answers {near_duplicate_share(ans):.2%}, "
              f"questions {near_duplicate_share(qs):.2%}")
        print(f"  largest pairwise 5-gram Jaccard: answers {max_pair(ans):.3f}, "
              f"questions {max_pair(qs):.3f}")
        where = f" ({eval_overlap[1]})" if eval_overlap[0] > 0 else ""
        print(f"  largest Jaccard with a built-in assay question: {eval_overlap[0]:.3f}{where}")


if __name__ == "__main__":
    main()
