"""Reading rows to judge (or labelled rows) from JSONL, and writing judged rows back."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from petridish.data.formats import jsonl_values, read_text
from petridish.errors import PetridishError
from petridish.judges.base import Item, Judgment
from petridish.paths import atomic_write


def is_real(row: dict[str, Any]) -> bool:
    """A labelled row holding a real model answer (its source starts `real`), not a written
    item."""
    return str(row.get("source", "")).startswith("real")


def is_number(value: Any) -> bool:
    """A finite JSON number (not a bool, which Python counts as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def read_rows(path: Path, *, labels: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows with string `question` and `answer`; with `labels`, numeric 0-100 fields too; an
    optional positive `weight` (a training row's loss weight, e.g. teacher-scored rows)."""
    if not path.is_file():
        raise PetridishError("input file not found", file=path)
    text = read_text(path)
    rows = []
    ids: dict[str, int] = {}
    for n, row in jsonl_values(text, path):
        if not isinstance(row, dict):
            raise PetridishError("each line must be a JSON object", file=path, line=n)
        if "id" in row:
            rid = str(row["id"])
            if rid in ids:
                raise PetridishError(f"duplicate id {rid!r} (first on line {ids[rid]})",
                                     file=path, line=n, field="id")
            ids[rid] = n
        for key in ("question", "answer"):
            if not isinstance(row.get(key), str):
                raise PetridishError(f"row has no string {key!r}", file=path, line=n, field=key)
        for key in labels or []:
            value = row.get(key)
            if value is not None and not (is_number(value) and 0 <= value <= 100):
                raise PetridishError(f"label must be a number 0-100 or null, got {value!r}",
                                     file=path, line=n, field=key)
        weight = row.get("weight", 1)
        if not (is_number(weight) and weight > 0):
            raise PetridishError(f"weight must be a positive number, got {weight!r}",
                                 file=path, line=n, field="weight")
        rows.append(row)
    if not rows:
        raise PetridishError("no rows", file=path)
    return rows


def items_of(rows: list[dict[str, Any]]) -> list[Item]:
    return [Item(r["question"], r["answer"]) for r in rows]


def judged_rows(rows: list[dict[str, Any]],
                judgments: dict[str, list[Judgment]]) -> list[dict[str, Any]]:
    """Each row plus one field per rubric (score or null) and `unscored` reasons if any."""
    out = []
    for i, row in enumerate(rows):
        new = dict(row)
        reasons = {}
        for rubric, js in judgments.items():
            score = js[i].score
            new[rubric] = None if score is None else round(score, 3)
            if score is None:
                reasons[rubric] = js[i].reason
        if reasons:
            new["unscored"] = reasons
        new["judged_by"] = {r: f"{js[i].judge} · {r} v{js[i].version}"
                            for r, js in judgments.items()}
        out.append(new)
    return out


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """All rows or nothing: a temporary file renamed into place."""
    atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
