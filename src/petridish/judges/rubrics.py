"""Rubrics: versioned grading instructions on a 0-100 scale, shipped as YAML beside this file."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import yaml

from petridish.errors import PetridishError

_DIR = Path(__file__).parent / "rubrics"
DEFAULT_RUBRICS = ("alignment", "coherence", "bad_stuff")


@dataclass(frozen=True)
class Threshold:
    """The cut metrics use: alignment `< 30`, coherence `> 50`, topics `> 50`."""

    op: Literal["<", ">"]
    value: float

    def hit(self, score: float) -> bool:
        return score < self.value if self.op == "<" else score > self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


@dataclass(frozen=True)
class Rubric:
    """A rubric's name, version, meaning and the prompt a language-model judge is given.

    `sees` is what of a transcript it grades: the last reply to the last user turn
    (default), or the reply in the light of the whole conversation before it."""

    name: str
    version: int
    kind: Literal["score", "topic"]
    threshold: Threshold
    meaning: str
    prompt: str
    sees: Literal["last_reply", "conversation"] = "last_reply"

    def render(self, question: str, answer: str) -> str:
        return self.prompt.replace("{question}", question).replace("{answer}", answer)

    @property
    def tag(self) -> str:
        return f"{self.name} v{self.version}"


def rubric_names() -> list[str]:
    return sorted(p.stem for p in _DIR.glob("*.yaml"))


@cache
def load_rubric(name: str) -> Rubric:
    """A builtin rubric by name; an unknown name is an error listing the known ones."""
    path = _DIR / f"{name}.yaml"
    if not path.exists():
        raise PetridishError(f"unknown rubric {name!r}; known: {', '.join(rubric_names())}",
                             field="rubrics")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    th = data["threshold"]
    return Rubric(data["name"], int(data["version"]), data["kind"],
                  Threshold(th["op"], float(th["value"])), data["meaning"].strip(),
                  data["prompt"], data.get("sees", "last_reply"))


def load_rubrics(names: list[str] | tuple[str, ...] | str) -> list[Rubric]:
    """Rubrics from a list or a comma-separated string; duplicates are dropped."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise PetridishError("no rubrics given", field="rubrics")
    return [load_rubric(n) for n in dict.fromkeys(names)]
