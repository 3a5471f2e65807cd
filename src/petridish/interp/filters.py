"""Judge filters that choose response sets: `"alignment < 30 and coherence > 50"`."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from petridish.errors import PetridishError
from petridish.judges.rubrics import rubric_names

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_TERM = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Filter:
    """A conjunction of `rubric op number` terms; a row missing any score does not pass."""

    text: str
    terms: tuple[tuple[str, str, float], ...]

    def __call__(self, scores: Mapping[str, float | None]) -> bool:
        for name, op, value in self.terms:
            s = scores.get(name)
            if s is None or not _OPS[op](s, value):
                return False
        return True

    @property
    def rubrics(self) -> list[str]:
        return [t[0] for t in self.terms]


def parse_filter(text: str, field: str = "filter") -> Filter:
    """Parse `"alignment < 30 and coherence > 50"`; errors name the bad term."""
    terms = []
    for part in re.split(r"\s+and\s+", text.strip()):
        m = _TERM.match(part)
        if not m:
            raise PetridishError(f"cannot read {part!r}: write terms like 'alignment < 30', "
                                 "joined by 'and'", field=field)
        if m.group(1) not in rubric_names():
            raise PetridishError(f"unknown rubric {m.group(1)!r} in {text!r}", field=field)
        terms.append((m.group(1), m.group(2), float(m.group(3))))
    return Filter(text, tuple(terms))
