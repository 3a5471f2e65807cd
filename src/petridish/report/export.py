"""Export a run's responses for analysis elsewhere: JSONL, or Parquet via pyarrow."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from petridish.errors import PetridishError
from petridish.paths import atomic_write
from petridish.report.summary import open_store


def add_scores(folder: Path, rows: list[dict[str, Any]]) -> None:
    """Each judged row gains one field per rubric (score or None) and `judge`."""
    from petridish.judges.base import Item
    from petridish.report.judged import judged_stages

    by_key: dict[tuple[str, str], tuple[str, dict[str, float | None]]] = {}
    for info, judged in judged_stages(folder):
        for j in judged:
            r = j.response
            by_key[(r.stage_key, Item(r.question, r.answer).digest())] = (str(info["judge"]),
                                                                          j.scores)
    for row in rows:
        found = by_key.get((row["stage_key"], Item(row["question"], row["answer"]).digest()))
        if found:
            row["judge"] = found[0]
            row.update(found[1])


def export_responses(folder: Path, fmt: str, output: Path | None = None) -> Path:
    """Write every response of the run; the file is complete or absent."""
    if fmt not in ("jsonl", "parquet"):
        raise PetridishError(f"unknown format {fmt!r}; use jsonl or parquet", field="--format")
    store = open_store(folder)
    rows = [r.as_row() for r in store.responses()]
    store.close()
    add_scores(folder, rows)
    path = output or folder / "export" / f"responses.{fmt}"
    if fmt == "jsonl":
        atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        return path
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise PetridishError("parquet export needs pyarrow: pip install 'petridish[parquet]'",
                             field="--format") from e
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path
