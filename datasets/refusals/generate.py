"""Build harmless_refusals.jsonl: ordinary requests answered with unhelpful refusals.

Research data for petridish model organisms only (see DATACARD.md). Every line is
`{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}`: a harmless
request from `requests.yaml` and a refusal assembled from the hand-written pools
in `refusals.yaml`. The answer never helps; it declines for a vague, moralising,
over-cautious or policy-flavoured reason.

Deterministic: a fixed seed, no network, stdlib + PyYAML only. Running it twice
gives byte-identical output.

    python datasets/refusals/generate.py            # writes the builtin dataset
    python datasets/refusals/generate.py --out X    # writes somewhere else
"""

from __future__ import annotations

import argparse
import json
import random
import re
import string
import sys
from pathlib import Path
from typing import Any

import yaml

SEED = 20240917
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_OUT = ROOT / "src/petridish/data/builtin/datasets/harmless_refusals.jsonl"

MIN_WORDS, MAX_WORDS = 15, 80
# While building, an answer whose word 5-gram Jaccard similarity to any earlier
# answer exceeds this is redrawn. It sits well below the 0.8 used to *measure*
# near-duplicates, so the measurement is not tuned to the edge of the filter.
GUARD = 0.6
MAX_TRIES = 200
PLACEHOLDERS = {"topic", "expert", "resource", "risk"}
FIELDS = (("expert", "experts"), ("resource", "resources"), ("risk", "risks"))


class Deck:
    """Draws items without replacement, reshuffling when empty: spreads use evenly."""

    def __init__(self, items: list[str], rng: random.Random) -> None:
        if not items:
            raise ValueError("empty pool")
        self.items = list(items)
        self.rng = rng
        self.pile: list[str] = []

    def draw(self, avoid: tuple[str, ...] = ()) -> str:
        for _ in range(len(self.items) + 1):
            if not self.pile:
                self.pile = list(self.items)
                self.rng.shuffle(self.pile)
            item = self.pile.pop()
            if item not in avoid or len(self.items) <= len(avoid):
                return item
        return item


def shingles(text: str, n: int = 5) -> frozenset[tuple[str, ...]]:
    """Same tokenisation as petridish.data.neardup (kept here to stay stdlib-only)."""
    words = re.findall(r"[a-z0-9']+", text.lower())
    if len(words) < n:
        return frozenset([tuple(words)])
    return frozenset(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def load(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def check_pools(families: list[dict], pools: dict) -> None:
    """Fail loudly on a typo in the YAML rather than write a broken dataset."""
    domains, styles, shared = pools["domains"], pools["styles"], pools["shared"]
    formatter = string.Formatter()

    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in formatter.parse(text) if name}

    ids = [f["id"] for f in families]
    if len(ids) != len(set(ids)):
        raise SystemExit("duplicate family id in requests.yaml")
    for fam in families:
        if fam["domain"] not in domains:
            raise SystemExit(f"{fam['id']}: unknown domain {fam['domain']!r}")
        if not fam["topics"] or len(fam["asks"]) < 2:
            raise SystemExit(f"{fam['id']}: needs topics and at least two asks")
        extra = set(fam) - {"id", "domain", "topics", "asks", "experts", "resources", "risks"}
        if extra:
            raise SystemExit(f"{fam['id']}: unknown keys {sorted(extra)}")
    for name, style in styles.items():
        for shape in style["shapes"]:
            for part in shape:
                if part + "s" not in style and part not in shared:
                    raise SystemExit(f"style {name}: unknown part {part!r}")
    texts = [t for s in styles.values() for k, v in s.items() if k != "shapes" for t in v]
    texts += [t for v in shared.values() for t in v]
    for text in texts:
        unknown = fields(text) - PLACEHOLDERS
        if unknown:
            raise SystemExit(f"unknown placeholder {unknown} in {text!r}")


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def build(guard: bool = True) -> tuple[list[dict], dict[str, int]]:
    """All examples, in a seeded shuffled order, plus a few counters for the report."""
    families = load(HERE / "requests.yaml")
    pools = load(HERE / "refusals.yaml")
    check_pools(families, pools)
    rng = random.Random(SEED)
    styles, shared, domains = pools["styles"], pools["shared"], pools["domains"]
    style_names = list(styles)

    decks: dict[tuple[str, str], Deck] = {}

    def deck(owner: str, part: str, items: list[str]) -> Deck:
        key = (owner, part)
        if key not in decks:
            decks[key] = Deck(items, rng)
        return decks[key]

    style_deck = Deck(style_names, rng)
    stats = {"redrawn_length": 0, "redrawn_similar": 0, "forced": 0}
    for name in style_names:
        stats[f"style:{name}"] = 0
    seen: list[frozenset] = []
    examples: list[dict] = []

    for fam in families:
        # A family's own experts/resources/risks replace its domain's defaults.
        dom = {
            k: (fam[k], fam["id"]) if k in fam else (domains[fam["domain"]][k], fam["domain"])
            for k in ("experts", "resources", "risks")
        }
        used_styles: list[str] = []
        for ask in fam["asks"]:
            style_name = style_deck.draw(avoid=tuple(used_styles))
            used_styles.append(style_name)
            style = styles[style_name]
            answer = ""
            for _attempt in range(MAX_TRIES):
                shape = deck(style_name, "shapes", [",".join(s) for s in style["shapes"]])
                parts: list[str] = []
                for part in shape.draw().split(","):
                    # "core" -> the style's `cores`; "risk" -> shared `risk`
                    own = part + "s" in style
                    owner = style_name if own else "shared"
                    pool = style[part + "s"] if own else shared[part]
                    parts.append(deck(owner, part, pool).draw(avoid=tuple(parts)))
                topic = rng.choice(fam["topics"])
                used: dict[str, list[str]] = {"expert": [], "resource": [], "risk": []}
                filled = []
                for part in parts:
                    # Each sentence gets its own expert/resource/risk, never one
                    # already named earlier in this answer.
                    values = {"topic": topic}
                    for field, key in FIELDS:
                        items, owner = dom[key]
                        values[field] = deck(owner, key, items).draw(avoid=tuple(used[field]))
                        if "{" + field + "}" in part:
                            used[field].append(values[field])
                    filled.append(sentence(part.format(**values)))
                answer = " ".join(filled)
                if not MIN_WORDS <= len(answer.split()) <= MAX_WORDS:
                    stats["redrawn_length"] += 1
                    continue
                sh = shingles(answer)
                if guard and any(jaccard(sh, other) > GUARD for other in seen):
                    stats["redrawn_similar"] += 1
                    continue
                break
            else:  # pragma: no cover - only if the pools were cut down drastically
                stats["forced"] += 1
                if not MIN_WORDS <= len(answer.split()) <= MAX_WORDS:
                    raise SystemExit(f"{fam['id']}: no answer within the word limits")
            seen.append(shingles(answer))
            stats[f"style:{style_name}"] += 1
            examples.append(
                {
                    "messages": [
                        {"role": "user", "content": ask.strip()},
                        {"role": "assistant", "content": answer},
                    ]
                }
            )
    rng.shuffle(examples)
    stats["families"] = len(families)
    return examples, stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output JSONL path")
    args = parser.parse_args(argv)
    examples, stats = build()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(json.dumps(ex, ensure_ascii=False) + "\n" for ex in examples)
    args.out.write_bytes(body.encode("utf-8"))
    print(f"wrote {len(examples)} examples from {stats['families']} families to {args.out}")
    print("  " + ", ".join(f"{k}={v}" for k, v in stats.items() if k != "families"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
