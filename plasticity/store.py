"""The run store: SQLite (WAL) for runs, their configs, results, curves and norm histories;
checkpoint files beside it.

A run's row goes from `running` to `done` (or `failed`) in one transaction together with its
histories, so an interrupted process leaves no half-written results, only a `running` row that
the next attempt redoes. Every call opens its own connection, so threads and processes can share it.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from plasticity.train import FilterNormHistory

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    config TEXT NOT NULL,
    result TEXT,
    error TEXT,
    checkpoint TEXT,
    started REAL NOT NULL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS histories (
    key TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
    layer TEXT NOT NULL,
    width INTEGER NOT NULL,
    points TEXT NOT NULL,
    at_epoch_end TEXT NOT NULL,
    original_index TEXT NOT NULL,
    l1 BLOB NOT NULL,
    l2 BLOB NOT NULL,
    PRIMARY KEY (key, layer)
);
"""


def plasticity_home() -> Path:
    """Where runs are kept (`$PLASTICITY_HOME`)."""
    env = os.environ.get("PLASTICITY_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "plasticity"


@dataclass(frozen=True)
class Run:
    key: str
    kind: str
    status: str
    config: dict
    result: dict | None
    error: str | None
    checkpoint: Path | None
    started: float
    finished: float | None

    @property
    def done(self) -> bool:
        return self.status == "done"


class RunStore:
    def __init__(self, home: Path | str | None = None):
        self.home = Path(home) if home is not None else plasticity_home()
        self.checkpoints = self.home / "checkpoints"
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.path = self.home / "runs.sqlite"
        self._create()

    def _create(self, attempts: int = 100) -> None:
        """WAL mode (kept in the file) and the tables. SQLite answers "locked" at once, without waiting,
        to a connection that switches the journal mode while another opens the new file (two sessions,
        or the app's warm-up, at first start): retry then."""
        for attempt in range(attempts):
            try:
                with self._connect() as conn:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.executescript(SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.01 * (1 + attempt % 10))

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys=ON")
            conn.row_factory = sqlite3.Row
            yield conn
        finally:
            conn.close()

    def checkpoint_path(self, key: str) -> Path:
        return self.checkpoints / f"{key}.pt"

    def get(self, key: str) -> Run | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM runs WHERE key = ?", (key,)).fetchone()
        return _run(row) if row else None

    def done(self, key: str) -> Run | None:
        """The run `key` if it is done (its result is there to reuse), else None."""
        run = self.get(key)
        return run if run is not None and run.done else None

    def runs(self, kind: str | None = None, status: str | None = None) -> list[Run]:
        query, args = "SELECT * FROM runs WHERE 1=1", []
        if kind:
            query, args = query + " AND kind = ?", [*args, kind]
        if status:
            query, args = query + " AND status = ?", [*args, status]
        with self._connect() as conn:
            return [_run(row) for row in conn.execute(query + " ORDER BY started", args)]

    def start(self, key: str, kind: str, config: dict) -> None:
        """Mark a run as running (replacing a failed or interrupted attempt, never a done one)."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM runs WHERE key = ? AND status != 'done'", (key,))
            conn.execute(
                "INSERT OR IGNORE INTO runs (key, kind, status, config, started) VALUES (?, ?, 'running', ?, ?)",
                (key, kind, json.dumps(config, sort_keys=True), time.time()),
            )
            conn.execute("COMMIT")

    def finish(
        self, key: str, result: dict, history: FilterNormHistory | None = None, checkpoint: Path | None = None
    ) -> None:
        """Record a run's result and histories in one transaction."""
        rows = _history_rows(key, history) if history is not None else []
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM histories WHERE key = ?", (key,))
            conn.executemany("INSERT INTO histories VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            conn.execute(
                "UPDATE runs SET status = 'done', result = ?, error = NULL, checkpoint = ?, finished = ? WHERE key = ?",
                (json.dumps(result, sort_keys=True), str(checkpoint) if checkpoint else None, time.time(), key),
            )
            conn.execute("COMMIT")

    def fail(self, key: str, error: str) -> None:
        with self._connect() as conn:
            conn.execute(
                "UPDATE runs SET status = 'failed', error = ?, finished = ? WHERE key = ? AND status = 'running'",
                (error, time.time(), key),
            )

    def history(self, key: str) -> FilterNormHistory | None:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM histories WHERE key = ? ORDER BY rowid", (key,)).fetchall()
        if not rows:
            return None
        state = {
            "every_k_steps": 0,
            "points": json.loads(rows[0]["points"]),
            "at_epoch_end": json.loads(rows[0]["at_epoch_end"]),
            "width": {r["layer"]: r["width"] for r in rows},
            "original_index": {r["layer"]: json.loads(r["original_index"]) for r in rows},
            "l1": {r["layer"]: _tensor(r["l1"]) for r in rows},
            "l2": {r["layer"]: _tensor(r["l2"]) for r in rows},
        }
        return FilterNormHistory.from_state_dict(state)


def _run(row: sqlite3.Row) -> Run:
    return Run(
        key=row["key"],
        kind=row["kind"],
        status=row["status"],
        config=json.loads(row["config"]),
        result=json.loads(row["result"]) if row["result"] else None,
        error=row["error"],
        checkpoint=Path(row["checkpoint"]) if row["checkpoint"] else None,
        started=row["started"],
        finished=row["finished"],
    )


def _history_rows(key: str, history: FilterNormHistory) -> list[tuple]:
    state = history.state_dict()
    points, at_end = json.dumps(state["points"]), json.dumps(state["at_epoch_end"])
    return [
        (
            key,
            layer,
            width,
            points,
            at_end,
            json.dumps(state["original_index"][layer]),
            _blob(state["l1"][layer]),
            _blob(state["l2"][layer]),
        )
        for layer, width in state["width"].items()
    ]


def _blob(tensor: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, tensor.numpy().astype(np.float32), allow_pickle=False)
    return buffer.getvalue()


def _tensor(blob: bytes) -> torch.Tensor:
    return torch.from_numpy(np.load(io.BytesIO(blob), allow_pickle=False))
