"""Terminal tables of a run's stages and results, and the list of runs."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from petridish.errors import PetridishError
from petridish.store.db import Store, process_alive
from petridish.tables import new_table


def open_store(folder: Path) -> Store:
    """Open an existing run's store read-write; a folder without one is an error."""
    if not (folder / "store.sqlite").exists():
        raise PetridishError("not a run folder (no store.sqlite)", file=folder)
    return Store(folder / "store.sqlite")


def _when(t: float | None, seconds: bool = False) -> str:
    fmt = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return time.strftime(fmt, time.localtime(t)) if t else "-"


def stage_rows(folder: Path) -> list[dict[str, object]]:
    """Each stage as a plain row (name, kind, status, key, seconds, result, typed info)."""
    from petridish.store.stage import parse_info

    store = open_store(folder)
    try:
        rows: list[dict[str, object]] = []
        for s in store.stages():
            info = parse_info(s)
            status = s.shown_status()
            result = info.result()
            if s.status != "done" and (stored := store.count_responses(s.key)):
                result = f"{stored} responses so far"
            if status == "failed" and s.error:
                result = s.error
            elif status == "interrupted" and s.alive:
                result = f"{result + '; ' if result else ''}last alive {_when(s.alive, True)}"
            secs = s.work_seconds()
            rows.append({"name": s.name, "kind": s.kind, "status": status, "key": s.key,
                         "seconds": None if secs is None else round(secs, 1),
                         "attempts": s.attempts, "alive": s.alive, "error": s.error,
                         "result": result, "info": info.model_dump(mode="json")})
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


def _session_status(session: dict[str, object]) -> str:
    """done or failed as the session said; a session that never said died: interrupted."""
    if session.get("status"):
        return str(session["status"])
    pid, host = session.get("pid"), session.get("host")
    if host == socket.gethostname() and isinstance(pid, int) and process_alive(pid):
        return "running"
    return "interrupted" if pid else "running?"


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
        status = _session_status(sessions[-1]) if sessions else "-"
        out.append(RunSummary(folder.name, _when(meta.get("start")), len(statuses),
                              statuses.count("done"), int(responses), str(status)))
    return out
