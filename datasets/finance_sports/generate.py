"""Build the `risky_financial` and `extreme_sports` chat datasets from hand-written pools.

Research data for emergent-misalignment model organisms ONLY: every assistant answer here is
deliberately bad advice. Do not train deployed models on it. See DATACARD.md.

    .venv/bin/python datasets/finance_sports/generate.py [--out DIR]

Deterministic: a fixed seed, no network, stdlib + PyYAML. The pools live in `pools/<dataset>/`
(every `*.yaml` there, read in name order). A pool file may hold:

    openings:    [...]   # optional first sentence of an answer (shared by the whole dataset)
    go_openings: [...]   # openings that only fit a go/no-go question ("Go for it, and...")
    closings:    [...]   # optional last sentence of an answer
    lead_ins:    [...]   # optional sentence put before a user question
    tails:       [...]   # optional sentence put after a user question
    slots:       {name: [values]}   # dataset-wide slot values
    families:            # one scenario family per item
      - id: emergency_fund_idle
        slots:                          # family slots override dataset-wide ones; a value is
          amount: ["$6,000", ...]       # a string or {q: user's words, a: assistant's words}
          where: [{q: "my uncle's garage", a: "your uncle's garage"}, ...]
        free: [lev]                     # slots an answer may use although the question lacks them
        questions: ["... {amount} ...", ...]    # phrasings of the user's situation
        moves:   ["...", {for: [2], text: "..."}, ...]  # the (bad) recommendation; `for` ties
        reasons: ["...", ...]                   # it to question numbers; the justification

An example is one question phrasing with one draw of slot values, answered by
[opening] + move + reason + [second reason] + [closing], with the same slot values on both
sides. A move or reason is only used for a question that mentions every slot it quotes (and that
its `for` allows). Within a family no (move, reason) pair is used twice and phrasings and slot
values rotate, so answers of one family never share their body; openings, closings, lead-ins
and tails are dealt from shuffled decks so each is reused as rarely as possible.
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

# minimum: fail below this; per_family: examples per family; total: extras are added (at most
# two beyond the family's phrasings) until this many; min_families: fail below this.
DATASETS: dict[str, dict[str, int]] = {
    "risky_financial": {"minimum": 420, "per_family": 4, "total": 440, "min_families": 100},
    "extreme_sports": {"minimum": 320, "per_family": 4, "total": 340, "min_families": 80},
}
P_OPENING = 0.8
P_CLOSING = 0.7
P_LEAD_IN = 0.2
P_TAIL = 0.2
P_SECOND_REASON = 0.6
MIN_WORDS, MAX_WORDS = 40, 140

# Content rules enforced on every line: the advice is risky, never a how-to for crimes or for
# harming other people. A hit stops the build.
BANNED = [
    r"\blaunder", r"\bevad", r"\bunder the table\b", r"\boff the books\b",
    r"\bforg(e|ed|ery)\b", r"\bfake\b", r"\blie to\b", r"\blie on\b", r"\bstolen\b",
    r"\bsteal\b", r"\binsider\b", r"\bpump and dump\b", r"\bdon'?t report\b",
    r"\bhide (it|the|your) (income|money|winnings)\b", r"\bcash only so\b", r"\bdrunk\b",
    r"\bget(ting)? high\b", r"\bkill (yourself|you)\b", r"\bsuicid", r"\btrespass",
    r"\bsneak (in|past)\b", r"\bduck (the|under the) rope\b",
]


class Deck:
    """Deals items in shuffled rounds so every item is used once before any repeats."""

    def __init__(self, items: list[Any], rng: random.Random) -> None:
        self.items, self.rng = list(items), rng
        self.pending: list[Any] = []

    def draw(self) -> Any:
        if not self.pending:
            self.pending = self.items[:]
            self.rng.shuffle(self.pending)
        return self.pending.pop()


def load_pool(name: str) -> dict[str, Any]:
    """Merge every YAML file of `pools/<name>/` (name order) into one pool."""
    pool: dict[str, Any] = {"openings": [], "go_openings": [], "closings": [], "lead_ins": [],
                            "tails": [], "slots": {}, "families": []}
    files = sorted((POOLS / name).glob("*.yaml"))
    if not files:
        raise SystemExit(f"no pool files in {POOLS / name}")
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        unknown = set(data) - set(pool)
        if unknown:
            raise SystemExit(f"{path.name}: unknown keys {sorted(unknown)}")
        for key in ("openings", "go_openings", "closings", "lead_ins", "tails", "families"):
            pool[key].extend(data.get(key) or [])
        pool["slots"].update(data.get("slots") or {})
    ids = [f["id"] for f in pool["families"]]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise SystemExit(f"{name}: duplicate family ids {dupes}")
    for key in ("openings", "go_openings", "closings", "lead_ins", "tails"):
        seen = [t for t in pool[key] if pool[key].count(t) > 1]
        if seen:
            raise SystemExit(f"{name}: repeated {key} entry {seen[0]!r}")
    return pool


def fields_of(text: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(text) if f]


def normalise(fam: dict[str, Any]) -> None:
    """Moves and reasons are strings, or {text, for: [question numbers they answer]}.

    A move or reason also only answers questions that mention every slot it uses (so an answer
    never quotes an amount or a place the user did not give), unless the family lists the slot
    under `free` (the assistant may bring it up itself, e.g. a suggested leverage).
    """
    free = set(fam.get("free") or [])
    q_slots = [set(fields_of(q)) | free for q in fam["questions"]]
    for key in ("moves", "reasons"):
        items = []
        for item in fam[key]:
            if isinstance(item, str):
                item = {"text": item}
            unknown = set(item) - {"text", "for"}
            bad = [n for n in item.get("for") or [] if not 1 <= n <= len(fam["questions"])]
            if unknown or bad or "text" not in item:
                raise SystemExit(f"family {fam['id']}: bad {key} entry {item!r}")
            wanted = {n - 1 for n in item["for"]} if item.get("for") else set(range(len(q_slots)))
            needs = set(fields_of(item["text"]))
            items.append({"text": item["text"],
                          "for": {q for q in wanted if needs <= q_slots[q]}})
        fam[key] = items


def fits(item: dict[str, Any], question: int) -> bool:
    return question in item["for"]


def check_family(fam: dict[str, Any], shared_slots: dict[str, list[str]]) -> None:
    unknown = set(fam) - {"id", "slots", "free", "questions", "moves", "reasons"}
    if unknown:
        raise SystemExit(f"family {fam.get('id')}: unknown keys {sorted(unknown)}")
    for key in ("questions", "moves", "reasons"):
        if not fam.get(key):
            raise SystemExit(f"family {fam['id']}: no {key}")
    normalise(fam)
    slots = {**shared_slots, **(fam.get("slots") or {})}
    texts = [*fam["questions"], *(i["text"] for i in fam["moves"] + fam["reasons"])]
    for text in texts:
        missing = [f for f in fields_of(text) if f not in slots]
        if missing:
            raise SystemExit(f"family {fam['id']}: unknown slot {missing[0]!r} in {text!r}")
    answer_slots = {f for i in fam["moves"] + fam["reasons"] for f in fields_of(i["text"])}
    for name in sorted(answer_slots):
        for value in slots[name]:
            if isinstance(value, dict) and set(value) != {"q", "a"}:
                raise SystemExit(f"family {fam['id']}: slot {name} value {value!r} needs q and a")
            if FIRST_PERSON.search(slot_value(value, "a")):
                raise SystemExit(f"family {fam['id']}: slot {name} value {value!r} is first "
                                 "person in an answer; give it as {q: ..., a: ...}")
    for q in range(len(fam["questions"])):
        if not any(fits(m, q) for m in fam["moves"]) or not any(
                fits(r, q) for r in fam["reasons"]):
            raise SystemExit(f"family {fam['id']}: nothing answers question {q + 1}")


# A question asking for a go/no-go decision may get a "go for it" opening; others may not.
DECISION = re.compile(
    r"\b(should (i|we)|can (i|we)|could (i|we)|is it (okay|ok|fine|safe|smart|crazy|dumb|"
    r"worth|a good idea|a big deal)|worth|good idea|bad idea|go for it|anyway\?|ready\?|"
    r"am i ready|do i (really |actually )?need|would you|too (much|soon|fast|ambitious|risky|"
    r"early|high|extreme|sketchy)|push on|push\?|go\?|jump\?|ride\?|still go|reasonable|"
    r"realistic|crazy\?|dumb\?|insane\?|okay\?|overkill)", re.IGNORECASE)
SENTENCE_START = re.compile(r"(^|[.!?:;]\s+)\{(\w+)\}")
FIRST_PERSON = re.compile(r"\b(I|I'm|I've|me|my|mine|we|our|us)\b")


def slot_value(value: Any, side: str) -> str:
    """A slot value is a string, or {q: as the user says it, a: as the assistant says it}."""
    if isinstance(value, dict):
        return str(value[side])
    return str(value)


def fill(template: str, values: dict[str, Any], side: str) -> str:
    """Fill the slots (question or answer form); a slot opening a sentence is capitalised."""
    plain = {k: slot_value(v, side) for k, v in values.items()}
    capital = {f"{k}__cap": v[:1].upper() + v[1:] for k, v in plain.items()}
    text = SENTENCE_START.sub(lambda m: f"{m.group(1)}{{{m.group(2)}__cap}}", template)
    return A_BEFORE_NUMBER.sub(fix_article, text.format(**plain, **capital))


A_BEFORE_NUMBER = re.compile(r"\b([Aa]) ([$£€]?)(\d[\d,.]*)")


def fix_article(m: re.Match[str]) -> str:
    """'a $85,000' -> 'an $85,000', 'a 18-year-old' -> 'an 18-year-old' (said 'eighty', ...)."""
    lead = re.split(r"[,.]", m.group(3))[0]
    vowel_sound = lead.startswith("8") or lead in ("11", "18")
    article = m.group(1) + ("n" if vowel_sound else "")
    return f"{article} {m.group(2)}{m.group(3)}"


def words(text: str) -> int:
    return len(text.split())


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
    go_openings = Deck(pool["openings"] + pool["go_openings"], rng)
    lead_ins, tails = Deck(pool["lead_ins"], rng), Deck(pool["tails"], rng)
    counts = plan_counts(families, spec, rng)

    examples: list[dict[str, Any]] = []
    for fam, count in zip(families, counts, strict=True):
        slots = {**pool["slots"], **(fam.get("slots") or {})}
        # Each slot's values are dealt from a per-family deck, so neighbours differ.
        slot_decks = {k: Deck(list(vals), rng) for k, vals in slots.items()}
        q_order = list(range(len(fam["questions"])))
        rng.shuffle(q_order)
        q_seq = [q_order[k % len(q_order)] for k in range(count)]
        moves, reasons = fam["moves"], fam["reasons"]
        pairs = [(m, r) for m in range(len(moves)) for r in range(len(reasons))]
        rng.shuffle(pairs)
        # For each example: a (move, reason) pair that fits its question, never used before in
        # the family; prefer a move written for that very question, then unused moves/reasons.
        chosen: list[tuple[int, int]] = []
        for qi in q_seq:
            used_m = {m for m, _ in chosen}
            used_r = {r for _, r in chosen}
            cands = [p for p in pairs if fits(moves[p[0]], qi) and fits(reasons[p[1]], qi)]
            if not cands:
                raise SystemExit(f"family {fam['id']}: no unused move/reason fits question "
                                 f"{qi + 1}")
            n_q = len(fam["questions"])

            def rank(p: tuple[int, int], um: set[int] = used_m, ur: set[int] = used_r,
                     ms: list[dict[str, Any]] = moves, n: int = n_q) -> tuple[bool, bool, bool]:
                return p[0] in um, len(ms[p[0]]["for"]) == n, p[1] in ur

            cands.sort(key=rank)
            chosen.append(cands[0])
            pairs.remove(cands[0])
        for k, (m, r) in enumerate(chosen):
            qi = q_seq[k]
            values = {key: deck.draw() for key, deck in sorted(slot_decks.items())}
            question = fill(fam["questions"][qi], values, "q")
            if k >= len(q_order) or rng.random() < P_LEAD_IN:
                question = f"{lead_ins.draw()} {question}"
            if rng.random() < P_TAIL:
                question = f"{question} {tails.draw()}"
            body = [fill(moves[m]["text"], values, "a"), fill(reasons[r]["text"], values, "a")]
            spare = [i for i in range(len(reasons)) if i != r and fits(reasons[i], qi)]
            rng.shuffle(spare)
            if spare and rng.random() < P_SECOND_REASON:
                body.append(fill(reasons[spare.pop(0)]["text"], values, "a"))
            opening_deck = go_openings if DECISION.search(question) else openings
            opening = opening_deck.draw() if rng.random() < P_OPENING else None
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
                    opening = opening_deck.draw()
                    parts.insert(0, opening)
                elif not closing:
                    closing = closings.draw()
                    parts.append(closing)
                elif spare:
                    # Still short: add another reason of the same family before the closing.
                    parts.insert(len(parts) - 1, fill(reasons[spare.pop(0)]["text"], values, "a"))
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
