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
    from petridish.report.results import load_results

    by_key: dict[tuple[str, str], tuple[str, dict[str, float | None]]] = {}
    for res in load_results(folder):
        for j in res.judged or []:
            by_key[(res.sample_key, j.response.key)] = (str(res.judge), j.scores)
    for row in rows:
        found = by_key.get((row["stage_key"], _key(row)))
        if found:
            row["judge"] = found[0]
            row.update(found[1])


def _key(row: dict[str, Any]) -> str:
    base = f"{row['question_set']}/{row['question_id']}/{row['sample_index']}"
    return f"{base}/{row['variant']}" if row["variant"] else base


def export_responses(folder: Path, fmt: str, output: Path | None = None) -> Path:
    """Write every response of the run (its transcript, turns and metadata beside the usual
    columns); the file is complete or absent."""
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
    for row in rows:  # free-form per-assay metadata: JSON text (Parquet needs fixed columns)
        row["meta"] = json.dumps(row["meta"], ensure_ascii=False)
        row["turns"] = json.dumps(row["turns"])
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path
