"""The run store: SQLite (WAL) for runs, their configs, results, curves and norm histories;
checkpoint files beside it. What it promises, and the tests that hold it to that, are in docs/store.md.

- Atomic runs: a run's row goes from `running` to `done` (or `failed`) in one transaction together
  with its histories, so an interrupted process leaves no half-written results.
- One computation per run across processes: `start` claims a run for its caller (owner pid and host,
  and a heartbeat this process refreshes while it holds the claim). Another caller of `start` waits
  while the owner lives, then finds the run done; a dead owner's claim expires and is taken over. A
  done row is never overwritten.
- Relocatable: checkpoint paths are stored relative to the home; rows from before that still read.
- Versioned: the schema version is SQLite's `user_version`; an older store is migrated forward by the
  first write, a newer one is refused.
- Reading never writes: listing works on a read-only home, and nothing is created until a run starts.
- A file-system or database failure is a `StoreError`: one line that says what to do.

Every call opens its own connection, so threads and processes can share a store.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from plasticity.errors import StoreError, file_error
from plasticity.train import FilterNormHistory

SCHEMA_VERSION = 2  # 1: the layout before versioning (user_version 0); 2: claims, relative checkpoint paths
HEARTBEAT_SECONDS = 10.0  # how often a process refreshes the claims it holds
CLAIM_EXPIRES_SECONDS = 120.0  # a claim not refreshed for this long is taken over (its owner hangs or is gone)
WAIT_POLL_SECONDS = 0.5  # how often a caller waiting for another process's run looks again
HOST = socket.gethostname()

RUN_COLUMNS = ("key", "kind", "status", "config", "result", "error", "checkpoint", "started", "finished")
CLAIM_COLUMNS = ("owner_host", "owner_pid", "claim", "heartbeat")
HISTORY_COLUMNS = ("key", "layer", "width", "points", "at_epoch_end", "original_index", "l1", "l2")

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
    finished REAL,
    owner_host TEXT,
    owner_pid INTEGER,
    claim TEXT,
    heartbeat REAL
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
    owner: str | None = None  # "pid@host" of the process that computes (or computed) it

    @property
    def done(self) -> bool:
        return self.status == "done"


class RunStore:
    """The runs kept in `home` (default: `plasticity_home()`).

    The API the library and the dashboard use, and keep using: `start` (claim), `finish`, `fail`
    for a run's lifecycle (through `runs.lifecycle.run_once`); `get`, `done`, `runs`, `history` to
    read; `checkpoint_path` for a run's file. Creating a RunStore touches nothing on disk.
    """

    def __init__(self, home: Path | str | None = None):
        self.home = Path(home) if home is not None else plasticity_home()
        self.checkpoints = self.home / "checkpoints"
        self.path = self.home / "runs.sqlite"
        self._writable = False

    def checkpoint_path(self, key: str) -> Path:
        return self.checkpoints / f"{key}.pt"

    # Reading: never writes, works on a read-only home, and an absent store holds no runs.

    def get(self, key: str) -> Run | None:
        rows = self._read("WHERE key = ?", (key,))
        return rows[0] if rows else None

    def get_many(self, keys: Iterable[str]) -> dict[str, Run]:
        """The runs of `keys` that the store holds, by key, in one read (a study's table reads every cell)."""
        wanted, found = list(dict.fromkeys(keys)), {}
        for start in range(0, len(wanted), 500):  # well under SQLite's limit on a statement's parameters
            chunk = wanted[start : start + 500]
            found.update((run.key, run) for run in self._read(f"WHERE key IN ({', '.join('?' * len(chunk))})", chunk))
        return found

    def done(self, key: str) -> Run | None:
        """The run `key` if it is done (its result is there to reuse; a caller that needs its checkpoint
        file checks that the file exists), else None."""
        run = self.get(key)
        return run if run is not None and run.done else None

    def runs(self, kind: str | None = None, status: str | None = None) -> list[Run]:
        where, args = "WHERE 1 = 1", []
        if kind:
            where, args = where + " AND kind = ?", [*args, kind]
        if status:
            where, args = where + " AND status = ?", [*args, status]
        return self._read(where + " ORDER BY started", args)

    def history(self, key: str) -> FilterNormHistory | None:
        with self._reading() as conn:
            if conn is None:
                return None
            columns = ", ".join(HISTORY_COLUMNS)
            rows = conn.execute(f"SELECT {columns} FROM histories WHERE key = ? ORDER BY rowid", (key,)).fetchall()
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

    # A run's lifecycle: claim, then finish or fail.

    def start(self, key: str, kind: str, config: dict) -> bool:
        """Claim the run `key` for this caller to compute: True once claimed (then `finish` or `fail` it);
        False when it is done, found so or finished by another process while this one waited.

        A run another live process (or thread) computes is waited for; a claim whose owner is gone (its
        pid no longer runs on this host, the thread of this process that claimed it has ended, or its
        heartbeat is older than CLAIM_EXPIRES_SECONDS) is taken over, as is a failed run or a done one
        whose checkpoint file is missing. A done run stays.
        """
        while True:
            with self._writing() as conn:
                conn.execute("BEGIN IMMEDIATE")
                row = conn.execute(
                    "SELECT key, status, checkpoint, owner_host, owner_pid, claim, heartbeat FROM runs WHERE key = ?",
                    (key,),
                ).fetchone()
                if row is not None and row["claim"] is not None and _HEARTBEATS.is_ours(self.path, key, row["claim"]):
                    conn.execute("COMMIT")
                    return True  # this thread claimed it already (a nested call)
                if row is not None and not self._replaceable(row):
                    conn.execute("COMMIT")
                    if row["status"] == "done":
                        return False
                    time.sleep(WAIT_POLL_SECONDS)  # another process computes it: wait for its outcome
                    continue
                claim, now = uuid.uuid4().hex, time.time()
                conn.execute("DELETE FROM runs WHERE key = ?", (key,))  # a failed or abandoned attempt
                conn.execute(
                    "INSERT INTO runs (key, kind, status, config, started, owner_host, owner_pid, claim, heartbeat)"
                    " VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                    (key, kind, json.dumps(config, sort_keys=True), now, HOST, os.getpid(), claim, now),
                )
                conn.execute("COMMIT")
            _HEARTBEATS.hold(self.path, key, claim)
            return True

    def finish(
        self, key: str, result: dict, history: FilterNormHistory | None = None, checkpoint: Path | None = None
    ) -> bool:
        """Record a claimed run's result and histories in one transaction; True when recorded. False when
        this process no longer holds the run (its claim expired and another took it over): the other's
        row is kept, never overwritten."""
        rows = _history_rows(key, history) if history is not None else []
        claim = _HEARTBEATS.claim_of(self.path, key)
        with self._writing() as conn:
            conn.execute("BEGIN IMMEDIATE")
            updated = conn.execute(
                "UPDATE runs SET status = 'done', result = ?, error = NULL, checkpoint = ?, finished = ?,"
                " claim = NULL, heartbeat = NULL WHERE key = ? AND status = 'running' AND claim IS ?",
                (json.dumps(result, sort_keys=True), self._stored_path(checkpoint), time.time(), key, claim),
            ).rowcount
            if updated != 1:
                conn.execute("ROLLBACK")
                return False
            conn.execute("DELETE FROM histories WHERE key = ?", (key,))
            marks = ", ".join("?" * len(HISTORY_COLUMNS))
            conn.executemany(f"INSERT INTO histories ({', '.join(HISTORY_COLUMNS)}) VALUES ({marks})", rows)
            conn.execute("COMMIT")
        _HEARTBEATS.release(self.path, key)
        return True

    def fail(self, key: str, error: str) -> None:
        """Mark a claimed run failed with `error` (one line, cut short) and release its claim."""
        claim = _HEARTBEATS.claim_of(self.path, key)
        with self._writing() as conn:
            conn.execute(
                "UPDATE runs SET status = 'failed', error = ?, finished = ?, claim = NULL, heartbeat = NULL"
                " WHERE key = ? AND status = 'running' AND claim IS ?",
                (error[:1000], time.time(), key, claim),
            )
        _HEARTBEATS.release(self.path, key)

    # Connections, versions and errors.

    def _read(self, where: str, args) -> list[Run]:
        with self._reading() as conn:
            if conn is None:
                return []
            version = _version(conn)
            columns = RUN_COLUMNS + (CLAIM_COLUMNS if version >= 2 else ())
            rows = conn.execute(f"SELECT {', '.join(columns)} FROM runs {where}", args).fetchall()
        return [self._run(row) for row in rows]

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection | None]:
        """A read-only connection, or None when there is no store yet (nothing is created to read)."""
        try:
            self._check_folders()
            if not self.path.exists():
                yield None
                return
            conn = self._open(self.path.resolve().as_uri() + "?mode=ro")
            try:
                _version(conn)
            except sqlite3.OperationalError:
                # A WAL store in a read-only folder without its -shm file cannot be opened as usual; nobody can
                # write there either, so it is read as it is.
                conn.close()
                conn = self._open(self.path.resolve().as_uri() + "?mode=ro&immutable=1")
            try:
                self._check_version(conn)
                # A store another process is creating right now has its file before its tables: nothing to read.
                yield conn if _version(conn) else None
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            raise self._error(exc) from None

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        try:
            if not self._writable:
                self._prepare()
            conn = self._open(self.path)
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.rollback()
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            raise self._error(exc) from None

    def _open(self, target: Path | str) -> sqlite3.Connection:
        conn = sqlite3.connect(target, timeout=60, isolation_level=None, uri=isinstance(target, str))
        conn.execute("PRAGMA foreign_keys=ON")
        conn.row_factory = sqlite3.Row
        return conn

    def _prepare(self, attempts: int = 100) -> None:
        """Before the first write: the folders, WAL mode, the tables at this version (migrating an older
        store), and the runs whose owner died without a word (a kill, a full disk) marked failed.

        SQLite answers "locked" at once, without waiting, to a connection that switches the journal mode
        while another opens the new file (two sessions, or the app's warm-up, at first start): retry then."""
        self._check_folders()
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        for attempt in range(attempts):
            try:
                conn = self._open(self.path)
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    self._migrate(conn)
                    self._mark_abandoned_runs_failed(conn)
                finally:
                    conn.close()
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.01 * (1 + attempt % 10))
        self._writable = True

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Create the tables, or bring an older store to SCHEMA_VERSION, in one transaction."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._check_version(conn)
            version = _version(conn)
            if version == 0:  # a new store
                for statement in filter(str.strip, SCHEMA.split(";")):
                    conn.execute(statement)
            else:
                for step in range(version, SCHEMA_VERSION):
                    MIGRATIONS[step](conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()
            raise

    def _check_version(self, conn: sqlite3.Connection) -> None:
        version = _version(conn)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer plasticity (store version {version}; this one reads up to "
                f"{SCHEMA_VERSION}): upgrade plasticity, or use another --home"
            )

    def _mark_abandoned_runs_failed(self, conn: sqlite3.Connection) -> None:
        rows = conn.execute(
            "SELECT key, owner_host, owner_pid, claim, heartbeat FROM runs WHERE status = 'running'"
        ).fetchall()
        for row in rows:
            if not _claim_alive(row, self.path):
                owner = f"pid {row['owner_pid']} on {row['owner_host']}" if row["claim"] else "an earlier version"
                conn.execute(
                    "UPDATE runs SET status = 'failed', error = ?, finished = ?, claim = NULL, heartbeat = NULL"
                    " WHERE key = ? AND status = 'running' AND claim IS ?",
                    (f"interrupted: the process computing it ({owner}) ended", time.time(), row["key"], row["claim"]),
                )

    def _replaceable(self, row: sqlite3.Row) -> bool:
        if row["status"] == "failed":
            return True
        if row["status"] == "running":
            return not _claim_alive(row, self.path)
        checkpoint = self._resolved_path(row["checkpoint"])
        return checkpoint is not None and not checkpoint.exists()  # done, but its file is gone: redo it

    def _check_folders(self) -> None:
        if self.home.exists() and not self.home.is_dir():
            raise StoreError(f"{self.home} is a file, not a folder: point --home or PLASTICITY_HOME at a folder")
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not a run store: move it away, or use another --home")

    def _error(self, exc: BaseException) -> StoreError:
        """The one line a user sees for a failure of the store's files."""
        try:
            self._check_folders()
        except StoreError as error:
            return error
        if isinstance(exc, OSError):
            return file_error(exc, self.home)
        text = str(exc).lower()
        if "full" in text:
            return file_error(OSError(28, "No space left on device"), self.home)
        if "readonly" in text or "read-only" in text:
            return file_error(OSError(30, "Read-only file system"), self.home)
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return StoreError(
                f"{self.path} is damaged or not a run store: move it aside (its finished runs are lost) and run "
                "again, or use another --home"
            )
        if "locked" in text or "busy" in text:
            return StoreError(f"{self.path} stayed locked by another process for a minute: try again later")
        if "unable to open" in text and self.home.is_dir() and not os.access(self.home, os.W_OK):
            return file_error(OSError(30, "Read-only file system"), self.home)
        if "unable to open" in text:
            return StoreError(f"cannot open {self.path}: check that {self.home} is a folder you can read and write")
        return StoreError(f"the run store {self.path} failed ({exc.__class__.__name__}: {str(exc)[:200]})")

    # Checkpoint paths: relative to the home, so a store can be copied or moved with its files.

    def _stored_path(self, checkpoint: Path | None) -> str | None:
        if checkpoint is None:
            return None
        try:
            return Path(checkpoint).resolve().relative_to(self.home.resolve()).as_posix()
        except ValueError:
            return str(Path(checkpoint).resolve())  # a file outside the home stays where it is

    def _resolved_path(self, stored: str | None) -> Path | None:
        """A stored checkpoint path as a file: relative ones under this home; an absolute one (written
        before paths were relative) is this home's file of the same name when there is one."""
        if not stored:
            return None
        path = Path(stored)
        if not path.is_absolute():
            return self.home / path
        own = self.checkpoints / path.name
        return own if path.parent.name == "checkpoints" and own.exists() else path

    def _run(self, row: sqlite3.Row) -> Run:
        names = row.keys()
        owner = f"{row['owner_pid']}@{row['owner_host']}" if "owner_pid" in names and row["owner_pid"] else None
        return Run(
            key=row["key"],
            kind=row["kind"],
            status=row["status"],
            config=_json(row["config"]),
            result=_json(row["result"]),
            error=row["error"],
            checkpoint=self._resolved_path(row["checkpoint"]),
            started=row["started"],
            finished=row["finished"],
            owner=owner,
        )


def _add_claims_and_relative_paths(conn: sqlite3.Connection) -> None:
    """Version 1 -> 2: who computes a running run (claims), and checkpoint paths relative to the home."""
    for column in ("owner_host TEXT", "owner_pid INTEGER", "claim TEXT", "heartbeat REAL"):
        conn.execute(f"ALTER TABLE runs ADD COLUMN {column}")
    for key, stored in conn.execute("SELECT key, checkpoint FROM runs WHERE checkpoint IS NOT NULL").fetchall():
        path = Path(stored)
        if path.is_absolute() and path.parent.name == "checkpoints":
            conn.execute("UPDATE runs SET checkpoint = ? WHERE key = ?", (f"checkpoints/{path.name}", key))


MIGRATIONS = {1: _add_claims_and_relative_paths}  # version n -> n + 1


def _version(conn: sqlite3.Connection) -> int:
    """The store's schema version; a store from before versioning (its tables, user_version 0) is 1."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == 0 and conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone():
        return 1
    return version


def _claim_alive(row: sqlite3.Row, store: Path) -> bool:
    """Whether a running row's owner is still at work: its heartbeat is recent and, on this host, its pid runs
    (in this process: the thread that claimed it runs)."""
    if row["claim"] is None or row["heartbeat"] is None:
        return False  # a row from before claims, or a released one
    if time.time() - row["heartbeat"] > CLAIM_EXPIRES_SECONDS:
        return False
    if row["owner_host"] != HOST:
        return True
    if row["owner_pid"] == os.getpid():
        return _HEARTBEATS.is_held(store, row["key"], row["claim"])
    return _pid_runs(row["owner_pid"])


def _pid_runs(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _json(text: str | None):
    """A stored JSON value, or None for an empty or unreadable one (a row another program wrote)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


class _Heartbeats:
    """The claims this process holds, refreshed every HEARTBEAT_SECONDS by one thread while any is held.

    A claim belongs to the thread that made it: should that thread end without finishing or failing the
    run (an error between the two), the claim is abandoned at once, not beaten on until the process ends."""

    def __init__(self):
        self._held: dict[tuple[str, str], tuple[str, threading.Thread]] = {}  # (store, key) -> (claim, holder)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, store: Path, key: str, claim: str) -> None:
        with self._lock:
            self._held[(str(store.resolve()), key)] = (claim, threading.current_thread())
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._beat, name="plasticity-store-heartbeat", daemon=True)
                self._thread.start()

    def release(self, store: Path, key: str) -> None:
        with self._lock:
            self._held.pop((str(store.resolve()), key), None)

    def claim_of(self, store: Path, key: str) -> str | None:
        with self._lock:
            held = self._held.get((str(store.resolve()), key))
        return held[0] if held else None

    def is_ours(self, store: Path, key: str, claim: str) -> bool:
        """Whether `claim` on `key` is held by this thread."""
        with self._lock:
            return self._held.get((str(store.resolve()), key)) == (claim, threading.current_thread())

    def is_held(self, store: Path, key: str, claim: str) -> bool:
        """Whether `claim` on `key` is held by a thread of this process that still runs."""
        with self._lock:
            held = self._held.get((str(store.resolve()), key))
        return held is not None and held[0] == claim and held[1].is_alive()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with self._lock:
                for place, (_, holder) in list(self._held.items()):
                    if not holder.is_alive():
                        del self._held[place]  # its thread ended without a word: the claim is abandoned
                held = dict(self._held)
            for (store, key), (claim, _) in held.items():
                try:
                    with sqlite3.connect(store, timeout=5) as conn:
                        conn.execute(
                            "UPDATE runs SET heartbeat = ? WHERE key = ? AND claim = ?", (time.time(), key, claim)
                        )
                    conn.close()
                except sqlite3.Error:
                    pass  # a full disk or a busy store: the next beat tries again; a claim outlives a few misses

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


_HEARTBEATS = _Heartbeats()
atexit.register(_HEARTBEATS.stop)


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
