"""Reading a 0-100 score from a judge's first answer token (logprobs) or from its text."""

from __future__ import annotations

import math
import re

MIN_MASS = 0.25  # below this the number tokens do not speak for the judge (RESEARCH.md §1)


def score_from_logprobs(top: list[tuple[str, float]]) -> tuple[float | None, float, str | None]:
    """(score, mass, reason): the probability-weighted mean over integer tokens 0..100.

    `top` is the first token's top logprobs as (token, logprob). Tokens that are integers in
    0..100 after stripping whitespace count; the rest is mass the judge put elsewhere.
    """
    weights: dict[int, float] = {}
    for token, logprob in top:
        text = token.strip()
        if text.isdigit() and 0 <= int(text) <= 100 and math.isfinite(logprob):
            weights[int(text)] = weights.get(int(text), 0.0) + math.exp(logprob)
    mass = sum(weights.values())
    if mass < MIN_MASS:
        return None, mass, f"number tokens carry {mass:.2f} of the probability (< {MIN_MASS})"
    return sum(v * p for v, p in weights.items()) / mass, mass, None


_INT = re.compile(r"(?<!\d)(?<!\d\.)(\d{1,3})(?!\d|\.\d)")  # integers, not parts of 3.5


def score_from_text(text: str) -> tuple[float | None, str | None]:
    """Parse mode: the first integer 0..100 in the reply, else unscored with the reply quoted."""
    for m in _INT.finditer(text):
        value = int(m.group(1))
        if value <= 100:
            return float(value), None
    shown = " ".join(text.split())[:40]
    return None, f"no number 0-100 in the reply {shown!r}"
