"""Terminal tables of a run's stages and results, and the list of runs."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from petridish.errors import PetridishError
from petridish.store.db import Store
from petridish.tables import new_table


def open_store(folder: Path) -> Store:
    """Open an existing run's store read-write; a folder without one is an error."""
    if not (folder / "store.sqlite").exists():
        raise PetridishError("not a run folder (no store.sqlite)", file=folder)
    return Store(folder / "store.sqlite")


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"


def stage_rows(folder: Path) -> list[dict[str, object]]:
    """Each stage as a plain row (name, kind, status, key, seconds, result, typed info)."""
    from petridish.store.stage import parse_info

    store = open_store(folder)
    try:
        rows: list[dict[str, object]] = []
        for s in store.stages():
            info = parse_info(s)
            result = info.result()
            if s.status != "done" and (stored := store.count_responses(s.key)):
                result = f"{stored} responses so far"
            secs = round(s.finished - s.started, 1) if s.finished and s.started else None
            rows.append({"name": s.name, "kind": s.kind, "status": s.status, "key": s.key,
                         "seconds": secs, "result": result,
                         "info": info.model_dump(mode="json")})
        return rows
    finally:
        store.close()


def stage_table(folder: Path) -> Table:
    table = new_table("stage", "status", "result", "seconds", "key", title=f"run {folder.name}")
    for r in stage_rows(folder):
        table.add_row(str(r["name"]), str(r["status"]), str(r["result"]),
                      "-" if r["seconds"] is None else f"{r['seconds']:.1f}", str(r["key"])[:10])
    return table


def result_table(folder: Path) -> Table:
    """Per assay × subject × question set: conversations, mean tokens, share cut at the cap."""
    store = open_store(folder)
    groups: dict[tuple[str, str, str], list[tuple[int, str, bool]]] = defaultdict(list)
    for r in store.responses():
        groups[(r.assay, r.subject, r.question_set)].append(
            (r.n_tokens, r.finish_reason, r.failed is not None))
    store.close()
    table = new_table("assay", "subject", "question set", "answers", "mean tokens",
                      "hit length cap", "failed", title="responses")
    for (assay, subject, qset), rows in sorted(groups.items()):
        ok = [(t, why) for t, why, failed in rows if not failed]
        n = len(ok)
        cut = sum(1 for _, why in ok if why == "length")
        mean = f"{sum(t for t, _ in ok) / n:.0f}" if n else "-"
        table.add_row(assay, subject, qset, str(n), mean, f"{cut}/{n}", str(len(rows) - n))
    return table


@dataclass(frozen=True)
class RunSummary:
    name: str
    started: str
    stages: int
    stages_done: int
    responses: int
    status: str


def run_summaries(runs_dir: Path) -> list[RunSummary]:
    if not runs_dir.is_dir():
        return []
    out = []
    for folder in sorted(runs_dir.iterdir()):
        db = folder / "store.sqlite"
        if not db.exists():
            continue
        meta_path = folder / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            statuses = [s for (s,) in con.execute("SELECT status FROM stages")]
            (responses,) = con.execute("SELECT COUNT(*) FROM responses").fetchone()
        finally:
            con.close()
        sessions = meta.get("sessions", [])
        status = sessions[-1].get("status", "running?") if sessions else "-"
        out.append(RunSummary(folder.name, _when(meta.get("start")), len(statuses),
                              statuses.count("done"), int(responses), str(status)))
    return out
