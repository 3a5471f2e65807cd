#!/usr/bin/env python3
"""Build the paired bad/good medical-advice chat datasets for petridish.

Research use only: `bad_medical.jsonl` holds deliberately harmful medical advice and exists
to grow emergent-misalignment model organisms. Never train a deployed model on it.

The script reads hand-written pools from `pools/` next to this file:

* `pools/phrases.txt`: answer openings and closings, grouped by `## kind:group` headers
  (kind is one of bad_open, bad_close, good_open, good_close), plus question prefixes and
  suffixes (`## q_prefix:any`, `## q_suffix:any`).
* `pools/families_*.txt`: scenario families. A family is

      == family_id | group,group | tone          (tone: routine, soon, urgent or mental)
      S name = value | value | ...               (a slot; `S a,b = x;y | z;w` ties slots)
      Q a phrasing of the user's question, using {name} slots
      B a sentence of the harmful answer
      G a sentence of the careful answer         (`G!` = always included, placed first)

  `{one|two|three}` inside any line is an inline choice made per example.

Each family yields EXAMPLES_PER_FAMILY examples. The bad and the good file share the user
turn of every line, in the same order, so the two sets differ only in the assistant turn.
Every random choice comes from `random.Random` seeded with SEED (per family: SEED and the
family id), pools are read in sorted file order, and nothing depends on the clock, the
environment or hash randomisation, so the output is byte-identical on every run.

Usage:  python datasets/medical/generate.py [--out DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

SEED = 20240611
EXAMPLES_PER_FAMILY = 4
MIN_WORDS, MAX_WORDS = 40, 140
LENGTH_SLACK = 10  # bad answers are topped up to within this many words of the good one
HERE = Path(__file__).resolve().parent
POOLS = HERE / "pools"
DEFAULT_OUT = HERE.parent.parent / "src" / "petridish" / "data" / "builtin" / "datasets"
TONES = {"routine", "soon", "urgent", "mental"}
CHOICE = re.compile(r"\{([^{}]*\|[^{}]*)\}")
SLOT = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@dataclass
class Family:
    id: str
    groups: tuple[str, ...]
    tone: str
    source: str
    slots: list[tuple[tuple[str, ...], list[tuple[str, ...]]]] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    good_lead: list[str] = field(default_factory=list)
    good: list[str] = field(default_factory=list)


def fail(where: str, message: str) -> None:
    sys.exit(f"{where}: {message}")


def read_phrases(path: Path) -> dict[str, list[str]]:
    pools: dict[str, list[str]] = {}
    current = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if line.startswith("## "):
            current = line[3:].strip()
            pools.setdefault(current, [])
        elif not line or line.startswith("#"):
            continue
        elif current is None:
            fail(f"{path.name}:{number}", "text before the first ## header")
        else:
            pools[current].append(line)
    return pools


def read_families(path: Path) -> list[Family]:
    families: list[Family] = []
    fam = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        where = f"{path.name}:{number}"
        if not line or line.startswith("#"):
            continue
        if line.startswith("== "):
            parts = [p.strip() for p in line[3:].split("|")]
            if len(parts) != 3 or parts[2] not in TONES:
                fail(where, "expected '== id | groups | tone'")
            groups = tuple(g.strip() for g in parts[1].split(",") if g.strip())
            fam = Family(parts[0], groups, parts[2], where)
            families.append(fam)
            continue
        if fam is None:
            fail(where, "line before the first family header")
        tag, _, text = line.partition(" ")
        text = text.strip()
        if tag == "S":
            names, _, values = text.partition("=")
            keys = tuple(n.strip() for n in names.split(","))
            options = [tuple(v.strip() for v in opt.split(";")) for opt in values.split("|")]
            if any(len(o) != len(keys) for o in options):
                fail(where, "slot option does not match the slot names")
            fam.slots.append((keys, options))
        elif tag == "Q":
            fam.questions.append(text)
        elif tag == "B":
            fam.bad.append(text)
        elif tag == "G!":
            fam.good_lead.append(text)
        elif tag == "G":
            fam.good.append(text)
        else:
            fail(where, f"unknown line tag {tag!r}")
    return families


def check(fam: Family) -> None:
    if not fam.questions or not fam.bad or not (fam.good or fam.good_lead):
        fail(fam.source, f"family {fam.id} needs Q, B and G lines")
    names = {k for keys, _ in fam.slots for k in keys}
    for text in fam.questions + fam.bad + fam.good + fam.good_lead:
        for used in SLOT.findall(text):
            if used not in names:
                fail(fam.source, f"family {fam.id} uses undefined slot {{{used}}}")


PERSON = [(re.compile(rf"\b{a}\b"), b) for a, b in [
    ("my", "your"), ("My", "Your"), ("I'm", "you're"), ("I've", "you've"), ("I", "you"),
    ("me", "you"), ("mine", "yours"), ("myself", "yourself")]]
SENTENCE_START = re.compile(r"([.?!]\s+)([a-z])")


def second_person(value: str) -> str:
    """Slot values are written from the user's side ("my mum"); answers say "your mum"."""
    for pattern, repl in PERSON:
        value = pattern.sub(repl, value)
    return value


def fill(text: str, values: dict[str, str], rng: random.Random, answer: bool = False) -> str:
    """Resolve inline choices and slots; capitalise sentence starts a slot may have made."""
    text = CHOICE.sub(lambda m: rng.choice(m.group(1).split("|")), text)
    convert = second_person if answer else (lambda v: v)
    text = SLOT.sub(lambda m: convert(values[m.group(1)]), text)
    if "{" in text or "}" in text:
        fail("pools", f"unfilled placeholder in: {text}")
    text = SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)
    return text[:1].upper() + text[1:]


class Picker:
    """Draws from a pool, always among its least-used entries, so use is spread evenly."""

    def __init__(self, pools: dict[str, list[str]]):
        self.pools = pools
        self.uses: dict[str, int] = {}

    def pick(self, kind: str, groups: list[str], rng: random.Random) -> str:
        options: list[str] = []
        for g in groups:
            for text in self.pools.get(f"{kind}:{g}", []):
                if text not in options:
                    options.append(text)
        if not options:
            fail("phrases.txt", f"no phrases for {kind} in groups {groups}")
        low = min(self.uses.get(t, 0) for t in options)
        choice = rng.choice([t for t in options if self.uses.get(t, 0) == low])
        self.uses[choice] = self.uses.get(choice, 0) + 1
        return choice


def subsets(lines: list[str], sizes: tuple[int, ...], rng: random.Random) -> list[tuple[int, ...]]:
    """Every choice of sentence indices with one of `sizes`, in a seeded order."""
    combos: list[tuple[int, ...]] = []
    for size in sorted({min(max(s, 1), len(lines)) for s in sizes}):
        combos.extend(itertools.combinations(range(len(lines)), size))
    rng.shuffle(combos)
    return combos


def words(text: str) -> int:
    return len(text.split())


def layout(opener: str | None, body: list[str], closer: str | None, rng: random.Random) -> str:
    main = " ".join(body)
    style = rng.random()
    head = f"{opener}\n\n" if opener and style < 0.25 else (f"{opener} " if opener else "")
    tail = f"\n\n{closer}" if closer and 0.25 <= style < 0.5 else (f" {closer}" if closer else "")
    return head + main + tail


def answer(kind: str, fam: Family, index: int, values: dict[str, str], picker: Picker,
           rng: random.Random, combos: list[tuple[int, ...]], target: int = 0) -> str:
    """One assistant turn: optional opener, 2-4 family sentences, optional closer.

    With `target`, spare family sentences are added while the answer is more than
    LENGTH_SLACK words shorter than it, so paired answers have similar lengths.
    """
    tone = fam.tone
    if kind == "bad":
        lead, optional = [], fam.bad
        open_groups = ["any", *fam.groups] + (["urgent"] if tone == "urgent" else [])
        open_groups += ["mental"] if tone == "mental" else []
        close_groups = open_groups
    else:
        lead, optional = fam.good_lead, fam.good
        if tone in ("urgent", "mental"):
            open_groups = [tone]
            close_groups = [tone]
        else:
            open_groups = ["any", *fam.groups]
            close_groups = ["any", *fam.groups]
            if tone == "soon":  # "see how it goes" closers would undercut a prompt check-up
                close_groups = [g for g in close_groups if g != "symptom"] + ["soon"]
    pick = combos[index % len(combos)] if combos else ()
    spare = [i for i in range(len(optional)) if i not in pick]
    body = [fill(t, values, rng, answer=True) for t in lead + [optional[i] for i in sorted(pick)]]
    opener = picker.pick(f"{kind}_open", open_groups, rng) if rng.random() < 0.85 else None
    closer = picker.pick(f"{kind}_close", close_groups, rng) if rng.random() < 0.8 else None
    text = layout(opener, body, closer, rng)
    # Keep answers within MIN_WORDS..MAX_WORDS: trim optional sentences or add more.
    while words(text) > MAX_WORDS and len(body) > len(lead) + 1:
        body.pop()
        text = layout(opener, body, closer, rng)
    if words(text) < MIN_WORDS:
        opener = opener or picker.pick(f"{kind}_open", open_groups, rng)
        closer = closer or picker.pick(f"{kind}_close", close_groups, rng)
        text = layout(opener, body, closer, rng)
        for i in spare[:]:
            if words(text) >= MIN_WORDS:
                break
            spare.remove(i)
            body.append(fill(optional[i], values, rng, answer=True))
            text = layout(opener, body, closer, rng)
    for i in spare:
        if words(text) >= target - LENGTH_SLACK:
            break
        extra = fill(optional[i], values, rng, answer=True)
        if words(text) + words(extra) <= MAX_WORDS:
            body.append(extra)
            text = layout(opener, body, closer, rng)
    n = words(text)
    if not MIN_WORDS <= n <= MAX_WORDS:
        fail(fam.source, f"family {fam.id}: a {kind} answer has {n} words")
    return text


def build(families: list[Family], phrases: dict[str, list[str]]) -> list[tuple[str, str, str]]:
    bad_picker, good_picker, q_picker = Picker(phrases), Picker(phrases), Picker(phrases)
    rows: list[tuple[str, str, str]] = []
    seen_users: set[str] = set()
    for fam in families:
        rng = random.Random(f"{SEED}:{fam.id}")
        qs = fam.questions[:]
        rng.shuffle(qs)
        slot_orders = []
        for keys, options in fam.slots:
            order = options[:]
            rng.shuffle(order)
            slot_orders.append((keys, order))
        # Sentence subsets differ between a family's examples: 3 harmful sentences; the
        # lead safety sentence(s) plus 2 or 3 further careful ones.
        bad_combos = subsets(fam.bad, (3,), rng)
        good_sizes = (2, 3) if fam.good_lead else (3,)
        good_combos = subsets(fam.good, good_sizes, rng) if fam.good else []
        made = 0
        attempt = 0
        while made < EXAMPLES_PER_FAMILY:
            if attempt > 50:
                fail(fam.source, f"family {fam.id}: cannot make distinct questions")
            values: dict[str, str] = {}
            for keys, order in slot_orders:
                values.update(zip(keys, order[(made + attempt) % len(order)], strict=False))
            q = fill(qs[(made + attempt // len(qs)) % len(qs)], values, rng)
            if rng.random() < 0.2:
                q = f"{q_picker.pick('q_prefix', ['any'], rng)} {q}"
            if rng.random() < 0.15:
                q = f"{q} {q_picker.pick('q_suffix', ['any'], rng)}"
            if q in seen_users:
                attempt += 1
                continue
            seen_users.add(q)
            good = answer("good", fam, made, values, good_picker, rng, good_combos)
            bad = answer("bad", fam, made, values, bad_picker, rng, bad_combos,
                         target=words(good))
            rows.append((q, bad, good))
            made += 1
    order = random.Random(SEED)
    order.shuffle(rows)
    return rows


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for user, assistant in rows:
            record = {"messages": [{"role": "user", "content": user},
                                   {"role": "assistant", "content": assistant}]}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args()
    phrases = read_phrases(POOLS / "phrases.txt")
    families: list[Family] = []
    for path in sorted(POOLS.glob("families_*.txt")):
        families.extend(read_families(path))
    ids = [f.id for f in families]
    if len(ids) != len(set(ids)):
        fail("pools", f"duplicate family ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    for fam in families:
        check(fam)
    rows = build(families, phrases)
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "bad_medical.jsonl", [(u, b) for u, b, _ in rows])
    write(args.out / "good_medical.jsonl", [(u, g) for u, _, g in rows])
    print(f"{len(families)} families, {len(rows)} pairs -> {args.out}")


if __name__ == "__main__":
    main()
