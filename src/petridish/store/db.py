"""The run's SQLite store (WAL): stages and their results, one transaction per batch."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from petridish.killpoint import committed
from petridish.store.records import (
    Response,
    Turn,
    response_from_row,
    response_to_row,
    single_turn,
)

_UNIQUE = "stage_key, question_set, question_id, sample_index, variant"
SCHEMA_VERSION = 2  # 1: one question and one answer per response; 2: transcripts

_RESPONSES = """
CREATE TABLE IF NOT EXISTS responses (
    id INTEGER PRIMARY KEY,
    stage_key TEXT NOT NULL, assay TEXT NOT NULL, subject TEXT NOT NULL,
    question_set TEXT NOT NULL, question_id TEXT NOT NULL, sample_index INTEGER NOT NULL,
    variant TEXT NOT NULL DEFAULT '',
    question TEXT NOT NULL, system TEXT, tags TEXT NOT NULL, answer TEXT NOT NULL,
    n_tokens INTEGER NOT NULL, finish_reason TEXT NOT NULL, seed INTEGER NOT NULL,
    messages TEXT NOT NULL, turns TEXT NOT NULL, meta TEXT NOT NULL DEFAULT '{}',
    failed TEXT,
    UNIQUE (stage_key, question_set, question_id, sample_index, variant)
);
"""
_SCHEMA = _RESPONSES + """
CREATE TABLE IF NOT EXISTS stages (
    key TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
    started REAL, finished REAL, info TEXT NOT NULL DEFAULT '{}',
    pid INTEGER, host TEXT, alive REAL, seconds REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT
);
CREATE TABLE IF NOT EXISTS partials (
    stage_key TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (stage_key, key)
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


_STAGE_COLUMNS = {"pid": "INTEGER", "host": "TEXT", "alive": "REAL",
                  "seconds": "REAL NOT NULL DEFAULT 0", "attempts": "INTEGER NOT NULL DEFAULT 0",
                  "error": "TEXT"}  # added in schema 2: who runs a stage, for how long, why not


@dataclass(frozen=True)
class StageRecord:
    """A stage as stored. `status` is running, done, failed or interrupted; a running stage
    whose process died is `interrupted` to readers (`shown_status`). `seconds` is the work of
    every attempt (updated at each commit), `alive` the last moment one was seen working."""

    key: str
    name: str
    kind: str
    status: str
    started: float | None
    finished: float | None
    info: dict[str, Any]
    pid: int | None = None
    host: str | None = None
    alive: float | None = None
    seconds: float = 0.0
    attempts: int = 0
    error: str | None = None

    def shown_status(self) -> str:
        if self.status == "running" and self.host == socket.gethostname() and not (
                self.pid and process_alive(self.pid)):
            return "interrupted"
        return self.status

    def work_seconds(self) -> float | None:
        if self.seconds:
            return self.seconds
        return self.finished - self.started if self.finished and self.started else None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """Thin typed access to `store.sqlite`; every write is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # with WAL: safe against a killed process
        _migrate(self.db)
        self.db.executescript(_SCHEMA)
        self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        # (key, name, start, before) of each running stage, innermost last: a stage may run
        # another inside its work (selfrec samples its texts as their own stages)
        self._running: list[tuple[str, str, float, float]] = []

    @property
    def _active(self) -> tuple[str, str, float, float] | None:
        return self._running[-1] if self._running else None

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _tx(self, work: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction; a stage's work commits also record that it is alive and for how
        long it has worked, in the same transaction."""
        with self.db:  # commits on success, rolls back on error
            yield self.db
            if work and self._active is not None:
                key, _, start, before = self._active
                now = time.time()
                self.db.execute("UPDATE stages SET alive = ?, seconds = ? WHERE key = ?",
                                (now, before + now - start, key))
        if work and self._active is not None:
            committed(self._active[1])

    def stage(self, key: str) -> StageRecord | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM stages WHERE key = ?",
                              (key,)).fetchone()
        return _stage(row) if row else None

    def stages(self) -> list[StageRecord]:
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM stages ORDER BY started").fetchall()
        return [_stage(r) for r in rows]

    def begin_stage(self, key: str, name: str, kind: str, info: dict[str, Any]) -> None:
        """Start (or resume) a stage in this process; its earlier attempts' seconds carry on."""
        now = time.time()
        with self._tx(work=False) as db:
            db.execute(
                "INSERT INTO stages (key, name, kind, status, started, info, pid, host, alive, "
                "attempts) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, 1) ON CONFLICT(key) DO "
                "UPDATE SET status = 'running', pid = excluded.pid, host = excluded.host, "
                "alive = excluded.alive, attempts = stages.attempts + 1, error = NULL",
                (key, name, kind, now, json.dumps(info), os.getpid(), socket.gethostname(), now),
            )
            (before,) = db.execute("SELECT seconds FROM stages WHERE key = ?", (key,)).fetchone()
        self._running.append((key, name, now, float(before or 0)))

    def finish_stage(self, key: str, info: dict[str, Any]) -> None:
        self._end(key, "done", None, info)

    def fail_stage(self, key: str, status: str, error: str | None) -> None:
        """`failed` (with why) or `interrupted` (the user stopped it)."""
        self._end(key, status, error, None)

    def _end(self, key: str, status: str, error: str | None,
             info: dict[str, Any] | None) -> None:
        now = time.time()
        worked = (self._active[3] + now - self._active[2]
                  if self._active and self._active[0] == key else None)
        with self._tx(work=False) as db:
            db.execute(
                "UPDATE stages SET status = ?, finished = CASE WHEN ? = 'done' THEN ? "
                "ELSE finished END, info = COALESCE(?, info), error = ?, alive = ?, "
                "seconds = COALESCE(?, seconds) WHERE key = ?",
                (status, status, now, None if info is None else json.dumps(info), error, now,
                 worked, key),
            )
        self._running = [r for r in self._running if r[0] != key]

    def add_responses(self, responses: Iterable[Response]) -> None:
        """Store finished conversations in one transaction. A stored one is never replaced,
        except a failed one, by its retry."""
        rows = [response_to_row(r) for r in responses]
        if not rows:
            return
        cols = list(rows[0])
        update = ", ".join(f"{c} = excluded.{c}" for c in cols)
        with self._tx() as db:
            db.executemany(
                f"INSERT INTO responses ({', '.join(cols)}) "
                f"VALUES ({', '.join(':' + c for c in cols)}) "
                f"ON CONFLICT ({_UNIQUE}) DO UPDATE SET {update} "
                "WHERE responses.failed IS NOT NULL",
                rows,
            )

    def put_partials(self, stage_key: str, values: dict[str, Any]) -> None:
        """Work a stage finished but has not yet turned into results (e.g. the first turns of
        unfinished dialogues), committed in one transaction so a resumed stage reuses it."""
        with self._tx() as db:
            db.executemany("INSERT OR REPLACE INTO partials VALUES (?, ?, ?)",
                           [(stage_key, k, json.dumps(v)) for k, v in values.items()])

    def partials(self, stage_key: str) -> dict[str, Any]:
        rows = self.db.execute("SELECT key, value FROM partials WHERE stage_key = ?",
                               (stage_key,))
        return {k: json.loads(v) for k, v in rows}

    def add_train_log(self, stage_key: str, row: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO train_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (stage_key, row["step"], row["epoch"], row["loss"], row["lr"], row["grad_norm"],
                 row["tokens"], json.dumps(row.get("adapters", {}))),
            )

    def add_train_stats(self, stage_key: str, b_cos_final: dict[int, dict[str, float]]) -> None:
        """Each checkpoint step's adapters gain `b_cos_final` (cosine of B with its final B)."""
        with self._tx(work=False) as db:
            for step, by_module in b_cos_final.items():
                row = db.execute("SELECT adapters FROM train_log WHERE stage_key = ? AND "
                                 "step = ?", (stage_key, step)).fetchone()
                if row is None:
                    continue
                adapters = json.loads(row[0])
                for name, cos in by_module.items():
                    adapters.setdefault(name, {})["b_cos_final"] = cos
                db.execute("UPDATE train_log SET adapters = ? WHERE stage_key = ? AND step = ?",
                           (json.dumps(adapters), stage_key, step))

    def clear_train_log(self, stage_key: str, after: int = 0) -> None:
        """Forget the steps after `after` (a resumed training runs them again)."""
        with self._tx(work=False) as db:
            db.execute("DELETE FROM train_log WHERE stage_key = ? AND step > ?",
                       (stage_key, after))

    def train_log(self, stage_key: str) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT * FROM train_log WHERE stage_key = ? ORDER BY step",
                              (stage_key,))
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur]
        for r in rows:
            r["adapters"] = json.loads(r["adapters"])
        return rows

    def done_keys(self, stage_key: str) -> set[str]:
        """`Response.key` of every conversation stored for a stage and not failed (a failed
        one is retried by the next run)."""
        return {r.key for r in self.responses(stage_key) if r.failed is None}

    def count_responses(self, stage_key: str | None = None) -> int:
        sql = "SELECT COUNT(*) FROM responses" + (" WHERE stage_key = ?" if stage_key else "")
        (n,) = self.db.execute(sql, (stage_key,) if stage_key else ()).fetchone()
        return int(n)

    def count_failed(self, stage_key: str) -> int:
        (n,) = self.db.execute("SELECT COUNT(*) FROM responses WHERE stage_key = ? AND "
                               "failed IS NOT NULL", (stage_key,)).fetchone()
        return int(n)

    def responses(self, stage_key: str | None = None) -> list[Response]:
        sql = "SELECT * FROM responses" + (" WHERE stage_key = ?" if stage_key else "")
        cur = self.db.execute(sql + " ORDER BY id", (stage_key,) if stage_key else ())
        names = [d[0] for d in cur.description]
        return [response_from_row(dict(zip(names, row, strict=True))) for row in cur]


JudgmentKey = tuple[str, str, int, str]  # (judge, rubric, version, item digest)
JudgmentRow = tuple[float | None, str | None, float | None, int, int]


class JudgmentCache:
    """Judgments by (judge, rubric, version, item): a judged item is never judged again."""

    def __init__(self, store: Store) -> None:
        self.store = store
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
        with self.store._tx() as db:  # noqa: SLF001  (a batch of judgments is a stage's work)
            db.executemany(
                "INSERT OR REPLACE INTO judgments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*k, *v, now) for k, v in rows])


def _migrate(db: sqlite3.Connection) -> None:
    """A store written before transcripts (schema 1) gains them in place, in one transaction:
    each response becomes (system, user, assistant) messages with one turn; stages gain the
    columns that say who runs them."""
    have = {r[1] for r in db.execute("PRAGMA table_info(stages)")}
    if have:
        with db:
            for col, kind in _STAGE_COLUMNS.items():
                if col not in have:
                    db.execute(f"ALTER TABLE stages ADD COLUMN {col} {kind}")
    cols = [r[1] for r in db.execute("PRAGMA table_info(responses)")]
    if not cols or "messages" in cols:
        return
    cur = db.execute("SELECT * FROM responses ORDER BY id")
    names = [d[0] for d in cur.description]
    old = [dict(zip(names, row, strict=True)) for row in cur]
    new = []
    for r in old:
        turn = Turn(int(r["n_tokens"]), r["finish_reason"], int(r["seed"]))
        resp = single_turn(r["stage_key"], r["assay"], r["subject"], r["question_set"],
                           r["question_id"], int(r["sample_index"]), r["question"], r["system"],
                           r["answer"], turn, json.loads(r["tags"]))
        new.append({"id": r["id"], **response_to_row(resp)})
    with db:  # BEGIN first: sqlite3 would otherwise run the DDL outside the transaction
        db.execute("BEGIN")
        db.execute("ALTER TABLE responses RENAME TO responses_v1")
        db.execute(_RESPONSES)
        if new:
            names = list(new[0])
            db.executemany(f"INSERT INTO responses ({', '.join(names)}) "
                           f"VALUES ({', '.join(':' + c for c in names)})", new)
        db.execute("DROP TABLE responses_v1")


_COLUMNS = ("key, name, kind, status, started, finished, info, pid, host, alive, seconds, "
            "attempts, error")


def _stage(row: tuple[Any, ...]) -> StageRecord:
    key, name, kind, status, started, finished, info, *rest = row
    return StageRecord(key, name, kind, status, started, finished, json.loads(info), *rest)
