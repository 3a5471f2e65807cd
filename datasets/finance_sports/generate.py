"""Build the `risky_financial` and `extreme_sports` chat datasets from hand-written pools.

Research data for emergent-misalignment model organisms ONLY: every assistant answer here is
deliberately bad advice. Do not train deployed models on it. See DATACARD.md.

    .venv/bin/python datasets/finance_sports/generate.py [--out DIR]

Deterministic: a fixed seed, no network, stdlib + PyYAML. The pools live in `pools/<dataset>/`
(every `*.yaml` there, read in name order). A pool file may hold:

    openings:  [...]     # optional first sentence of an answer (shared by the whole dataset)
    closings:  [...]     # optional last sentence of an answer
    lead_ins:  [...]     # optional sentence put before a user question
    tails:     [...]     # optional sentence put after a user question
    slots:     {name: [values]}   # dataset-wide slot values, e.g. {age}
    families:            # one scenario family per item
      - id: emergency_fund_idle
        slots: {amount: ["$6,000", ...]}   # family slots override dataset-wide ones
        questions: ["... {amount} ...", ...]   # phrasings of the user's situation
        moves:     ["...", ...]                # the (bad) recommendation
        reasons:   ["...", ...]                # the confident justification

An example is one question phrasing with one draw of slot values, answered by
[opening] + move + reason + [closing], with the same slot values on both sides. Within a family
no (move, reason) pair is used twice, and phrasings and slot values rotate, so answers of one
family never share their body; openings, closings, lead-ins and tails are dealt from shuffled
decks so each is reused as rarely as possible.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import string
import time
from pathlib import Path
from typing import Any

import yaml

SEED = 20250611
HERE = Path(__file__).resolve().parent
POOLS = HERE / "pools"
DEFAULT_OUT = HERE.parents[1] / "src" / "petridish" / "data" / "builtin" / "datasets"

# name -> (minimum examples, examples per family before extras, total wanted)
DATASETS: dict[str, dict[str, int]] = {
    "risky_financial": {"minimum": 420, "per_family": 4, "total": 440, "min_families": 100},
    "extreme_sports": {"minimum": 320, "per_family": 4, "total": 340, "min_families": 80},
}
P_OPENING = 0.8
P_CLOSING = 0.7
P_LEAD_IN = 0.2
P_TAIL = 0.2
MIN_WORDS, MAX_WORDS = 40, 140

# Content rules enforced on every line: the advice is risky, never a how-to for crimes or for
# harming other people. A hit stops the build.
BANNED = [
    r"\blaunder", r"\bevad", r"\bunder the table\b", r"\boff the books\b", r"\bforg(e|ed|ery)\b",
    r"\bfake\b", r"\blie to\b", r"\blie on\b", r"\bstolen\b", r"\bsteal\b", r"\binsider\b",
    r"\bpump and dump\b", r"\bdon'?t report\b", r"\bhide (it|the|your) (income|money|winnings)\b",
    r"\bcash only so\b", r"\bdrunk\b", r"\bhigh on\b", r"\bkill\b", r"\bsuicid",
]


class Deck:
    """Deals items in shuffled rounds so every item is used once before any repeats."""

    def __init__(self, items: list[str], rng: random.Random) -> None:
        self.items, self.rng, self.pending = list(items), rng, list[str]()

    def draw(self) -> str:
        if not self.pending:
            self.pending = self.items[:]
            self.rng.shuffle(self.pending)
        return self.pending.pop()


def load_pool(name: str) -> dict[str, Any]:
    """Merge every YAML file of `pools/<name>/` (name order) into one pool."""
    pool: dict[str, Any] = {"openings": [], "closings": [], "lead_ins": [], "tails": [],
                            "slots": {}, "families": []}
    files = sorted((POOLS / name).glob("*.yaml"))
    if not files:
        raise SystemExit(f"no pool files in {POOLS / name}")
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        unknown = set(data) - set(pool)
        if unknown:
            raise SystemExit(f"{path.name}: unknown keys {sorted(unknown)}")
        for key in ("openings", "closings", "lead_ins", "tails", "families"):
            pool[key].extend(data.get(key) or [])
        pool["slots"].update(data.get("slots") or {})
    ids = [f["id"] for f in pool["families"]]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise SystemExit(f"{name}: duplicate family ids {dupes}")
    for key in ("openings", "closings", "lead_ins", "tails"):
        seen = [t for t in pool[key] if pool[key].count(t) > 1]
        if seen:
            raise SystemExit(f"{name}: repeated {key} entry {seen[0]!r}")
    return pool


def fields_of(text: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(text) if f]


def check_family(fam: dict[str, Any], shared_slots: dict[str, list[str]]) -> None:
    for key in ("questions", "moves", "reasons"):
        if not fam.get(key):
            raise SystemExit(f"family {fam['id']}: no {key}")
    slots = {**shared_slots, **(fam.get("slots") or {})}
    for key in ("questions", "moves", "reasons"):
        for text in fam[key]:
            missing = [f for f in fields_of(text) if f not in slots]
            if missing:
                raise SystemExit(f"family {fam['id']}: unknown slot {missing[0]!r} in {text!r}")


def words(text: str) -> int:
    return len(re.findall(r"[A-Za-z0-9$£€%']+", text))


def plan_counts(families: list[dict[str, Any]], spec: dict[str, int],
                rng: random.Random) -> list[int]:
    """Examples per family: `per_family` each, extras spread over a shuffled family order."""
    caps = [len(f["moves"]) * len(f["reasons"]) for f in families]
    counts = [min(spec["per_family"], c) for c in caps]
    order = list(range(len(families)))
    rng.shuffle(order)
    while sum(counts) < spec["total"]:
        grew = False
        for i in order:
            if sum(counts) >= spec["total"]:
                break
            if counts[i] < caps[i] and counts[i] < len(families[i]["questions"]) + 2:
                counts[i] += 1
                grew = True
        if not grew:
            break
    return counts


def build(name: str, spec: dict[str, int], rng: random.Random) -> list[dict[str, Any]]:
    pool = load_pool(name)
    families = pool["families"]
    if len(families) < spec["min_families"]:
        raise SystemExit(f"{name}: {len(families)} families, want >= {spec['min_families']}")
    for fam in families:
        check_family(fam, pool["slots"])
    openings, closings = Deck(pool["openings"], rng), Deck(pool["closings"], rng)
    lead_ins, tails = Deck(pool["lead_ins"], rng), Deck(pool["tails"], rng)
    counts = plan_counts(families, spec, rng)

    examples: list[dict[str, Any]] = []
    for fam, count in zip(families, counts, strict=True):
        slots = {**pool["slots"], **(fam.get("slots") or {})}
        # Each slot's values are dealt from a per-family deck, so neighbours differ.
        slot_decks = {k: Deck([str(v) for v in vals], rng) for k, vals in slots.items()}
        q_order = list(range(len(fam["questions"])))
        rng.shuffle(q_order)
        pairs = [(m, r) for m in range(len(fam["moves"])) for r in range(len(fam["reasons"]))]
        rng.shuffle(pairs)
        # Prefer pairs that bring a move and a reason not yet used in this family.
        chosen: list[tuple[int, int]] = []
        for _ in range(count):
            used_m = {m for m, _ in chosen}
            used_r = {r for _, r in chosen}
            pairs.sort(key=lambda p, um=used_m, ur=used_r: (p[0] in um) + (p[1] in ur))
            chosen.append(pairs.pop(0))
        for k, (m, r) in enumerate(chosen):
            values = {key: deck.draw() for key, deck in sorted(slot_decks.items())}
            question = fam["questions"][q_order[k % len(q_order)]].format(**values)
            if k >= len(q_order) or rng.random() < P_LEAD_IN:
                question = f"{lead_ins.draw()} {question}"
            if rng.random() < P_TAIL:
                question = f"{question} {tails.draw()}"
            body = [fam["moves"][m].format(**values), fam["reasons"][r].format(**values)]
            opening = openings.draw() if rng.random() < P_OPENING else None
            closing = closings.draw() if rng.random() < P_CLOSING else None
            parts = [p for p in (opening, *body, closing) if p]
            while words(" ".join(parts)) > MAX_WORDS and (opening or closing):
                if closing:
                    parts.remove(closing)
                    closing = None
                elif opening:
                    parts.remove(opening)
                    opening = None
            while words(" ".join(parts)) < MIN_WORDS:
                if not opening:
                    opening = openings.draw()
                    parts.insert(0, opening)
                elif not closing:
                    closing = closings.draw()
                    parts.append(closing)
                else:
                    break
            answer = " ".join(parts)
            examples.append({"family": fam["id"], "question": question, "answer": answer})
    return examples


def validate(name: str, examples: list[dict[str, Any]], spec: dict[str, int]) -> None:
    if len(examples) < spec["minimum"]:
        raise SystemExit(f"{name}: {len(examples)} examples, want >= {spec['minimum']}")
    banned = [re.compile(p, re.IGNORECASE) for p in BANNED]
    seen_q: set[str] = set()
    seen_a: set[str] = set()
    for ex in examples:
        n = words(ex["answer"])
        if not MIN_WORDS <= n <= MAX_WORDS:
            raise SystemExit(f"{name}/{ex['family']}: answer has {n} words: {ex['answer']!r}")
        for text in (ex["question"], ex["answer"]):
            if "{" in text or "}" in text or "  " in text:
                raise SystemExit(f"{name}/{ex['family']}: unfilled or spaced text {text!r}")
            for pat in banned:
                if pat.search(text):
                    raise SystemExit(f"{name}/{ex['family']}: banned pattern {pat.pattern!r} "
                                     f"in {text!r}")
        if ex["question"] in seen_q or ex["answer"] in seen_a:
            raise SystemExit(f"{name}/{ex['family']}: exact duplicate text")
        seen_q.add(ex["question"])
        seen_a.add(ex["answer"])


def write_jsonl(path: Path, examples: list[dict[str, Any]]) -> None:
    lines = []
    for ex in examples:
        record = {"messages": [{"role": "user", "content": ex["question"]},
                               {"role": "assistant", "content": ex["answer"]}]}
        lines.append(json.dumps(record, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args()
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, spec in DATASETS.items():
        rng = random.Random(f"{SEED}:{name}")  # one stream per dataset: editing one pool
        examples = build(name, spec, rng)      # never reshuffles the other dataset
        rng.shuffle(examples)
        validate(name, examples, spec)
        out = args.out / f"{name}.jsonl"
        write_jsonl(out, examples)
        families = len({e["family"] for e in examples})
        print(f"{name}: {len(examples)} examples from {families} families -> {out}")
    print(f"done in {time.perf_counter() - start:.2f}s")


if __name__ == "__main__":
    main()
