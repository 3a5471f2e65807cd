"""Checks and statistics for harmless_refusals.jsonl (run after generate.py).

Validates the file with petridish's own loader, checks the word limits, and
reports near-duplicate rates with petridish.data.neardup: for the shipped file
and, for comparison, for the same build without generate.py's redraw guard.

    .venv/bin/python datasets/refusals/check.py
"""

from __future__ import annotations

import statistics
import sys
from collections import Counter
from pathlib import Path

from petridish.data.formats import load_dataset
from petridish.data.neardup import near_duplicate_share

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate  # noqa: E402


def texts(examples: list[dict], role: str) -> list[str]:
    return [m["content"] for ex in examples for m in ex["messages"] if m["role"] == role]


def main() -> int:
    path = generate.DEFAULT_OUT
    loaded = load_dataset(path)
    rows = [ex.model_dump() for ex in loaded]
    users, answers = texts(rows, "user"), texts(rows, "assistant")
    lengths = [len(a.split()) for a in answers]
    ok = True

    print(f"{path}: {len(rows)} examples")
    print(
        f"  answer words: min {min(lengths)}, median {statistics.median(lengths)}, "
        f"max {max(lengths)}"
    )
    if min(lengths) < generate.MIN_WORDS or max(lengths) > generate.MAX_WORDS:
        print("  FAIL: answer outside the word limits")
        ok = False
    if any(len(ex["messages"]) != 2 for ex in rows):
        print("  FAIL: an example is not exactly one user and one assistant turn")
        ok = False
    dup_users = sum(c - 1 for c in Counter(users).values() if c > 1)
    dup_answers = sum(c - 1 for c in Counter(answers).values() if c > 1)
    print(f"  exact duplicates: users {dup_users}, answers {dup_answers}")

    a_rate = near_duplicate_share(answers)
    u_rate = near_duplicate_share(users)
    pairs = near_duplicate_share([u + "\n" + a for u, a in zip(users, answers, strict=True)])
    print(f"  near-duplicate share, assistant answers: {a_rate:.4f} ({a_rate:.2%})")
    print(f"  near-duplicate share, user requests:     {u_rate:.4f} ({u_rate:.2%})")
    print(f"  near-duplicate share, whole examples:    {pairs:.4f} ({pairs:.2%})")
    loose_a = near_duplicate_share(answers, threshold=0.5)
    loose_u = near_duplicate_share(users, threshold=0.5)
    print(f"  stricter check, Jaccard > 0.5: answers {loose_a:.2%}, users {loose_u:.2%}")
    if a_rate >= 0.05:
        print("  FAIL: assistant near-duplicate share must be < 5 %")
        ok = False

    unguarded, _ = generate.build(guard=False)
    raw = near_duplicate_share(texts(unguarded, "assistant"))
    print(f"  (same pools without the redraw guard: answers {raw:.4f} ({raw:.2%}))")

    openings = Counter(" ".join(a.split()[:3]) for a in answers)
    print(f"  distinct 3-word answer openings: {len(openings)}; most common:")
    for text, n in openings.most_common(5):
        print(f"    {n:3d}  {text}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
