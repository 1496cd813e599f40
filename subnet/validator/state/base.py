"""The connection and its plumbing: WAL mode, migrations, all-or-nothing transactions, meta values.

Two kinds of handle on one file. The daemon's writer serialises its threads on one connection and
waits for another process's write lock only in bounded, retried steps (`lock_wait_s` in all), then
raises `StateBusy`, so a round can keep what it holds and try again later instead of hanging. A
reader (`reader()`, what the status API uses) has a connection per thread that never writes and
never takes the writer's lock: under WAL it reads the last committed state while a write is going on.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

from subnet.validator.state.records import StateBusy, StateError
from subnet.validator.state.schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

# One wait for the write lock before it is retried (and counted); the total is `lock_wait_s`.
LOCK_STEP_MS = 2_000
READ_BUSY_MS = 50  # a reader only waits out WAL bookkeeping, never a writer
WAL_SIZE_LIMIT = 64 * 1024**2  # the WAL file is truncated back to this after a checkpoint


def is_lock_error(error: BaseException) -> bool:
    return isinstance(error, StateBusy) or (
        isinstance(error, sqlite3.OperationalError) and "locked" in str(error).lower())


class StateBase:
    """Typed access to the state database. Thread-safe: the status API reads from another thread."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = LOCK_STEP_MS, lock_wait_s: float = 120.0,
                 read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.lock_wait_s = lock_wait_s
        self.on_lock_wait: Callable[[float], None] | None = None  # called with each wait's seconds (metrics)
        self._lock = threading.RLock()
        if read_only:
            self._local = threading.local()
            self._readers: list[sqlite3.Connection] = []
            self._db = None
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(self.path), timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        self._migrate()

    def reader(self) -> "StateBase":
        """A read-only handle on the same file, with its own connections (one per thread)."""
        return type(self)(self.path, read_only=True)

    # ---- plumbing -------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self.read_only:
                for con in self._readers:
                    con.close()
                self._readers.clear()
                self._local = threading.local()
            else:
                self._db.close()

    @property
    def schema_version(self) -> int:
        return int(self._query("PRAGMA user_version")[0][0])

    def _migrate(self) -> None:
        with self._lock:
            version = self.schema_version
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"state database {self.path} has schema version {version}, newer than this "
                    f"validator's {SCHEMA_VERSION}; upgrade the validator or use another --state-dir"
                )
            for index in range(version, SCHEMA_VERSION):
                with self.transaction() as db:
                    MIGRATIONS[index](db)
                    db.execute(f"PRAGMA user_version = {index + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing writes. BEGIN IMMEDIATE takes the write lock up front (no upgrade deadlocks),
        waiting for another process's lock in bounded steps; `StateBusy` after `lock_wait_s`."""
        if self.read_only:
            raise StateError("this state handle is read-only")
        with self._lock:
            self._begin()
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def _begin(self) -> None:
        started = time.monotonic()
        while True:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                if not is_lock_error(e):
                    raise
                waited = time.monotonic() - started
                if self.on_lock_wait is not None:
                    self.on_lock_wait(waited)
                if waited >= self.lock_wait_s:
                    raise StateBusy(f"state database {self.path} stayed write-locked for {waited:.0f} s") from e
                log.warning("state database write-locked by another process for %.0f s; still waiting", waited)
                time.sleep(min(1.0, max(0.0, self.lock_wait_s - waited)))

    def _query(self, sql: str, params: Sequence = ()) -> list[sqlite3.Row]:
        if self.read_only:
            return self._reader_connection().execute(sql, params).fetchall()
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _query_tuples(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """Like `_query`, as plain tuples (no Row objects): for large reads."""
        if self.read_only:
            cursor = self._reader_connection().cursor()
            cursor.row_factory = None
            return cursor.execute(sql, params).fetchall()
        with self._lock:
            cursor = self._db.cursor()
            cursor.row_factory = None
            return cursor.execute(sql, params).fetchall()

    def _reader_connection(self) -> sqlite3.Connection:
        con = getattr(self._local, "db", None)
        if con is None:
            con = sqlite3.connect(str(self.path), timeout=READ_BUSY_MS / 1000, isolation_level=None,
                                  check_same_thread=False)
            con.row_factory = sqlite3.Row
            con.execute(f"PRAGMA busy_timeout = {READ_BUSY_MS}")
            con.execute("PRAGMA query_only = 1")
            self._local.db = con
            with self._lock:
                self._readers.append(con)
        return con

    # ---- meta -------------------------------------------------------------------------------
    def set_meta(self, key: str, value: object) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    def get_meta(self, key: str, default: object = None) -> object:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default
