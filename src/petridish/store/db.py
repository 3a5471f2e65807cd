"""The run's SQLite store (WAL): stages and their results, one transaction per batch."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stages (
    key TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
    started REAL, finished REAL, info TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS responses (
    id INTEGER PRIMARY KEY,
    stage_key TEXT NOT NULL, assay TEXT NOT NULL, subject TEXT NOT NULL,
    question_set TEXT NOT NULL, question_id TEXT NOT NULL, sample_index INTEGER NOT NULL,
    question TEXT NOT NULL, system TEXT, tags TEXT NOT NULL, answer TEXT NOT NULL,
    n_tokens INTEGER NOT NULL, finish_reason TEXT NOT NULL, seed INTEGER NOT NULL,
    UNIQUE (stage_key, question_set, question_id, sample_index)
);
CREATE TABLE IF NOT EXISTS train_log (
    stage_key TEXT NOT NULL, step INTEGER NOT NULL, epoch REAL NOT NULL, loss REAL NOT NULL,
    lr REAL NOT NULL, grad_norm REAL NOT NULL, tokens INTEGER NOT NULL, adapters TEXT NOT NULL,
    PRIMARY KEY (stage_key, step)
);
CREATE TABLE IF NOT EXISTS judgments (
    judge TEXT NOT NULL, rubric TEXT NOT NULL, version INTEGER NOT NULL, item TEXT NOT NULL,
    score REAL, reason TEXT, mass REAL, tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (judge, rubric, version, item)
);
"""


@dataclass(frozen=True)
class Response:
    """One sampled answer of one subject to one question."""

    stage_key: str
    assay: str
    subject: str
    question_set: str
    question_id: str
    sample_index: int
    question: str
    system: str | None
    tags: tuple[str, ...]
    answer: str
    n_tokens: int
    finish_reason: str
    seed: int

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["tags"] = list(self.tags)
        return row


@dataclass(frozen=True)
class StageRecord:
    key: str
    name: str
    kind: str
    status: str
    started: float | None
    finished: float | None
    info: dict[str, Any]


class Store:
    """Thin typed access to `store.sqlite`; every write is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # with WAL: safe against a killed process
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self.db:  # commits on success, rolls back on error
            yield self.db

    def stage(self, key: str) -> StageRecord | None:
        row = self.db.execute("SELECT * FROM stages WHERE key = ?", (key,)).fetchone()
        return _stage(row) if row else None

    def stages(self) -> list[StageRecord]:
        rows = self.db.execute("SELECT * FROM stages ORDER BY started").fetchall()
        return [_stage(r) for r in rows]

    def begin_stage(self, key: str, name: str, kind: str, info: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO stages (key, name, kind, status, started, info) "
                "VALUES (?, ?, ?, 'running', ?, ?) ON CONFLICT(key) DO NOTHING",
                (key, name, kind, time.time(), json.dumps(info)),
            )

    def finish_stage(self, key: str, info: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE stages SET status = 'done', finished = ?, info = ? WHERE key = ?",
                (time.time(), json.dumps(info), key),
            )

    def add_responses(self, responses: Iterable[Response]) -> None:
        rows = [r.as_row() for r in responses]
        for row in rows:
            row["tags"] = json.dumps(row["tags"])
        cols = list(rows[0]) if rows else []
        if not rows:
            return
        with self._tx() as db:
            db.executemany(
                f"INSERT OR IGNORE INTO responses ({', '.join(cols)}) "
                f"VALUES ({', '.join(':' + c for c in cols)})",
                rows,
            )

    def add_train_log(self, stage_key: str, row: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO train_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (stage_key, row["step"], row["epoch"], row["loss"], row["lr"], row["grad_norm"],
                 row["tokens"], json.dumps(row.get("adapters", {}))),
            )

    def clear_train_log(self, stage_key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM train_log WHERE stage_key = ?", (stage_key,))

    def train_log(self, stage_key: str) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT * FROM train_log WHERE stage_key = ? ORDER BY step",
                              (stage_key,))
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur]
        for r in rows:
            r["adapters"] = json.loads(r["adapters"])
        return rows

    def done_samples(self, stage_key: str) -> set[tuple[str, str, int]]:
        """(question_set, question_id, sample_index) already stored for a stage."""
        rows = self.db.execute(
            "SELECT question_set, question_id, sample_index FROM responses WHERE stage_key = ?",
            (stage_key,),
        )
        return {(s, q, int(i)) for s, q, i in rows}

    def responses(self, stage_key: str | None = None) -> list[Response]:
        sql = "SELECT * FROM responses" + (" WHERE stage_key = ?" if stage_key else "")
        cur = self.db.execute(sql + " ORDER BY id", (stage_key,) if stage_key else ())
        names = [d[0] for d in cur.description]
        out = []
        for row in cur:
            data = dict(zip(names, row, strict=True))
            data.pop("id")
            data["tags"] = tuple(json.loads(data["tags"]))
            out.append(Response(**data))
        return out


JudgmentKey = tuple[str, str, int, str]  # (judge, rubric, version, item digest)
JudgmentRow = tuple[float | None, str | None, float | None, int, int]


class JudgmentCache:
    """Judgments by (judge, rubric, version, item): a judged item is never judged again."""

    def __init__(self, store: Store) -> None:
        self.db = store.db

    def get(self, judge: str, rubric: str, version: int,
            items: list[str]) -> dict[str, JudgmentRow]:
        """Stored judgments of these item digests, by digest."""
        out: dict[str, JudgmentRow] = {}
        for i in range(0, len(items), 500):  # keep under SQLite's variable limit
            chunk = items[i:i + 500]
            rows = self.db.execute(
                "SELECT item, score, reason, mass, tokens_in, tokens_out FROM judgments "
                f"WHERE judge = ? AND rubric = ? AND version = ? AND item IN "
                f"({', '.join('?' * len(chunk))})", [judge, rubric, version, *chunk])
            for item, *rest in rows:
                out[item] = tuple(rest)
        return out

    def put(self, rows: list[tuple[JudgmentKey, JudgmentRow]]) -> None:
        now = time.time()
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO judgments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*k, *v, now) for k, v in rows])


def _stage(row: tuple[Any, ...]) -> StageRecord:
    key, name, kind, status, started, finished, info = row
    return StageRecord(key, name, kind, status, started, finished, json.loads(info))
