"""The validator's memory: one SQLite file that survives restarts and weeks of running.

Why SQLite: one file, atomic transactions, readable with any tool while the daemon runs (WAL).
Every write that must be all-or-nothing (a round's results together with the EMA it produced)
goes through one transaction, so a kill -9 at any point leaves a state we can resume from.

Schema changes are ordered migration functions; `PRAGMA user_version` records how many ran.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

# Model (commitment) statuses
MODEL_PENDING = "pending"  # parsed, not yet downloaded
MODEL_VERIFIED = "verified"  # downloaded, hash and constraints checked
MODEL_FAILED = "failed"  # permanently rejected for this commitment (reason says why)
MODEL_RETRY = "retry"  # a transient failure; tried again next round
MODEL_INVALID = "invalid"  # the commitment string did not parse

# Round statuses
ROUND_STARTED = "started"
ROUND_SCORED = "scored"  # results and EMA committed; weights not yet set
ROUND_WEIGHTS_SET = "weights_set"
ROUND_DONE = "done"  # scored, weights not set in this round (cadence, dry run or refused)
ROUND_DISCARDED = "discarded"
ROUND_FAILED = "failed"

# Weight-setting attempt statuses
ATTEMPT_INTENT = "intent"  # recorded before calling the chain
ATTEMPT_SUCCESS = "success"
ATTEMPT_FAILED = "failed"
ATTEMPT_SKIPPED = "skipped"  # refused locally (all-zero or NaN weights)
ATTEMPT_UNKNOWN = "unknown"  # the daemon died between intent and outcome; never re-sent


def _run_script(db: sqlite3.Connection, script: str) -> None:
    """Statement by statement: `executescript` would commit the migration's transaction half-way."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _m1_initial(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE models (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            hotkey TEXT NOT NULL,
            uid INTEGER,
            competition TEXT,
            ref TEXT NOT NULL,
            block INTEGER NOT NULL,
            parse_error TEXT,
            status TEXT NOT NULL,
            reason TEXT,
            detail TEXT,
            model_dir TEXT,
            content_hash TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            first_seen REAL NOT NULL,
            updated_at REAL NOT NULL,
            last_round INTEGER,
            UNIQUE (hotkey, ref, block)
        );
        CREATE TABLE rounds (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            block INTEGER NOT NULL,
            seed TEXT,
            status TEXT NOT NULL,
            error TEXT,
            started_at REAL NOT NULL,
            finished_at REAL
        );
        CREATE TABLE round_data (
            round_id INTEGER NOT NULL REFERENCES rounds(id),
            competition TEXT NOT NULL,
            seed TEXT,
            page_ids TEXT,
            failed_pages TEXT,
            digest TEXT,
            n_docs INTEGER,
            PRIMARY KEY (round_id, competition)
        );
        CREATE TABLE results (
            round_id INTEGER NOT NULL REFERENCES rounds(id),
            competition TEXT NOT NULL,
            hotkey TEXT NOT NULL,
            uid INTEGER,
            model_id INTEGER REFERENCES models(id),
            mean_loss REAL,
            ci_low REAL,
            ci_high REAL,
            n_docs INTEGER,
            tokens_per_s REAL,
            seconds REAL,
            error TEXT,
            win_rate REAL,
            wins INTEGER,
            copy_of TEXT,
            losses BLOB,
            PRIMARY KEY (round_id, competition, hotkey)
        );
        CREATE TABLE verdicts (
            round_id INTEGER NOT NULL REFERENCES rounds(id),
            competition TEXT NOT NULL,
            earlier TEXT NOT NULL,
            later TEXT NOT NULL,
            eps REAL,
            diff REAL,
            ci_low REAL,
            ci_high REAL,
            later_wins INTEGER NOT NULL,
            PRIMARY KEY (round_id, competition, earlier, later)
        );
        CREATE TABLE ema (
            competition TEXT NOT NULL,
            hotkey TEXT NOT NULL,
            weight REAL NOT NULL,
            round_id INTEGER,
            PRIMARY KEY (competition, hotkey)
        );
        CREATE TABLE weight_attempts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            round_id INTEGER NOT NULL REFERENCES rounds(id),
            block INTEGER,
            uids TEXT NOT NULL,
            weights TEXT NOT NULL,
            status TEXT NOT NULL,
            message TEXT,
            created_at REAL NOT NULL,
            finished_at REAL
        );
        CREATE INDEX results_hotkey ON results (competition, hotkey);
        CREATE INDEX attempts_round ON weight_attempts (round_id);
        """
    )


def _m2_meta(db: sqlite3.Connection) -> None:
    """A small key-value table for daemon bookkeeping (e.g. the last chain error)."""
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


def _m3_registrations(db: sqlite3.Connection) -> None:
    """Who held which uid, as the validator saw it round after round.

    One row per stint: a hotkey at a uid over consecutive recorded rounds. A hotkey that leaves and
    comes back, or moves to another uid, starts a new stint, which is how a re-registered hotkey is
    told apart from one that never left (its EMA must start afresh). Rows grow with registrations,
    not with rounds, so the table stays small over months.
    """
    _run_script(
        db,
        """
        CREATE TABLE registrations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            hotkey TEXT NOT NULL,
            uid INTEGER NOT NULL,
            first_round INTEGER NOT NULL,
            first_block INTEGER NOT NULL,
            last_round INTEGER NOT NULL,
            last_block INTEGER NOT NULL
        );
        CREATE INDEX registrations_last_round ON registrations (last_round);
        CREATE INDEX registrations_hotkey ON registrations (hotkey, uid)
        """
    )


# Append only. Never edit a migration that has shipped: add a new one.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_m1_initial, _m2_meta, _m3_registrations]
SCHEMA_VERSION = len(MIGRATIONS)


class StateError(RuntimeError):
    """The state database is unusable (e.g. written by a newer version)."""


@dataclass(frozen=True)
class ModelRecord:
    id: int
    hotkey: str
    uid: int | None
    competition: str | None
    ref: str
    block: int
    parse_error: str | None
    status: str
    reason: str | None
    detail: str | None
    model_dir: str | None
    content_hash: str | None
    attempts: int
    last_round: int | None


@dataclass(frozen=True)
class RoundRecord:
    id: int
    block: int
    seed: str | None
    status: str
    error: str | None
    started_at: float
    finished_at: float | None


@dataclass(frozen=True)
class ResultRow:
    """One model's outcome in one round; `losses` is `DocLosses.to_bytes()` (or None)."""

    competition: str
    hotkey: str
    uid: int | None
    model_id: int | None
    mean_loss: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n_docs: int = 0
    tokens_per_s: float = 0.0
    seconds: float = 0.0
    error: str = ""
    win_rate: float | None = None
    wins: int | None = None
    copy_of: str | None = None
    losses: bytes | None = None


@dataclass(frozen=True)
class VerdictRow:
    competition: str
    earlier: str
    later: str
    eps: float
    diff: float
    ci_low: float
    ci_high: float
    later_wins: bool


@dataclass(frozen=True)
class Registration:
    """One stint of a hotkey at a uid, from the first to the last recorded round that saw it."""

    hotkey: str
    uid: int
    first_round: int
    first_block: int
    last_round: int
    last_block: int


@dataclass(frozen=True)
class AttemptRecord:
    id: int
    round_id: int
    block: int | None
    uids: list[int]
    weights: list[float]
    status: str
    message: str | None
    created_at: float


# meta key: the id of the latest round whose registrations were recorded
_REGISTRATIONS_ROUND = "registrations_round"


def _finite_or_none(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if x == x and x not in (float("inf"), float("-inf")) else None


class ValidatorState:
    """Typed access to the state database. Thread-safe: the status API reads from another thread."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            str(self.path), timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._migrate()

    # ---- plumbing -------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

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
        """All-or-nothing writes. BEGIN IMMEDIATE takes the write lock up front (no upgrade deadlocks)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

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

    # ---- models -----------------------------------------------------------------------------
    def upsert_commitment(
        self,
        hotkey: str,
        uid: int | None,
        ref: str,
        block: int,
        competition: str | None,
        parse_error: str | None = None,
    ) -> ModelRecord:
        """Record a commitment once; later sightings only refresh the uid. Returns the stored record."""
        now = time.time()
        status = MODEL_INVALID if parse_error else MODEL_PENDING
        with self.transaction() as db:
            db.execute(
                "INSERT INTO models (hotkey, uid, competition, ref, block, parse_error, status, reason,"
                " first_seen, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(hotkey, ref, block) DO UPDATE SET uid = excluded.uid",
                (hotkey, uid, competition, ref, block, parse_error, status,
                 "invalid_commitment" if parse_error else None, now, now),
            )
            row = db.execute(
                "SELECT * FROM models WHERE hotkey = ? AND ref = ? AND block = ?", (hotkey, ref, block)
            ).fetchone()
        return _model(row)

    def model(self, model_id: int) -> ModelRecord | None:
        rows = self._query("SELECT * FROM models WHERE id = ?", (model_id,))
        return _model(rows[0]) if rows else None

    def models(self, status: str | None = None) -> list[ModelRecord]:
        if status is None:
            rows = self._query("SELECT * FROM models ORDER BY id")
        else:
            rows = self._query("SELECT * FROM models WHERE status = ? ORDER BY id", (status,))
        return [_model(r) for r in rows]

    def mark_verified(self, model_id: int, model_dir: str, content_hash: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE models SET status = ?, reason = NULL, detail = NULL, model_dir = ?, content_hash = ?,"
                " attempts = attempts + 1, updated_at = ? WHERE id = ?",
                (MODEL_VERIFIED, model_dir, content_hash, time.time(), model_id),
            )

    def mark_failed(self, model_id: int, reason: str, detail: str = "", *, transient: bool = False) -> None:
        """A permanent failure sticks to this commitment; a transient one is retried next round."""
        with self.transaction() as db:
            db.execute(
                "UPDATE models SET status = ?, reason = ?, detail = ?, attempts = attempts + 1, updated_at = ?"
                " WHERE id = ?",
                (MODEL_RETRY if transient else MODEL_FAILED, reason, detail[:2000], time.time(), model_id),
            )

    def forget_model_dir(self, model_id: int) -> None:
        """The files were deleted (disk clean-up): a verified model must be fetched again if needed."""
        with self.transaction() as db:
            db.execute(
                "UPDATE models SET model_dir = NULL, status = CASE WHEN status = ? THEN ? ELSE status END,"
                " updated_at = ? WHERE id = ?",
                (MODEL_VERIFIED, MODEL_PENDING, time.time(), model_id),
            )

    # ---- rounds -----------------------------------------------------------------------------
    def start_round(self, block: int, seed: str | None = None) -> int:
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO rounds (block, seed, status, started_at) VALUES (?, ?, ?, ?)",
                (block, seed, ROUND_STARTED, time.time()),
            )
            return int(cur.lastrowid)

    def record_round_data(
        self,
        round_id: int,
        competition: str,
        seed: str,
        page_ids: Sequence[str],
        digest: str,
        n_docs: int,
        failed_pages: Sequence[str] = (),
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO round_data (round_id, competition, seed, page_ids, failed_pages, digest,"
                " n_docs) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (round_id, competition, seed, json.dumps(list(page_ids)), json.dumps(list(failed_pages)),
                 digest, n_docs),
            )
            db.execute("UPDATE rounds SET seed = COALESCE(seed, ?) WHERE id = ?", (seed, round_id))

    def complete_scoring(
        self,
        round_id: int,
        results: Iterable[ResultRow],
        verdicts: Iterable[VerdictRow],
        ema: Mapping[str, Mapping[str, float]],
        evaluated_model_ids: Iterable[int] = (),
        registered: Mapping[str, int] | None = None,
    ) -> None:
        """Results, verdicts and the new EMA land together, or not at all (the EMA is applied once).

        `registered` (hotkey -> uid of the round's metagraph) is recorded in the same transaction, so
        the registrations the next round compares against are exactly those this EMA was built on.
        """
        with self.transaction() as db:
            status = db.execute("SELECT status, block FROM rounds WHERE id = ?", (round_id,)).fetchone()
            if status is None or status["status"] != ROUND_STARTED:
                raise StateError(f"round {round_id} is not in progress (status {status and status['status']})")
            if registered is not None:
                _record_registrations(db, round_id, int(status["block"]), registered)
            db.executemany(
                "INSERT OR REPLACE INTO results (round_id, competition, hotkey, uid, model_id, mean_loss, ci_low,"
                " ci_high, n_docs, tokens_per_s, seconds, error, win_rate, wins, copy_of, losses)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (round_id, r.competition, r.hotkey, r.uid, r.model_id, _finite_or_none(r.mean_loss),
                     _finite_or_none(r.ci_low), _finite_or_none(r.ci_high), r.n_docs, r.tokens_per_s, r.seconds,
                     r.error, _finite_or_none(r.win_rate), r.wins, r.copy_of, r.losses)
                    for r in results
                ],
            )
            db.executemany(
                "INSERT OR REPLACE INTO verdicts (round_id, competition, earlier, later, eps, diff, ci_low,"
                " ci_high, later_wins) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (round_id, v.competition, v.earlier, v.later, _finite_or_none(v.eps),
                     _finite_or_none(v.diff), _finite_or_none(v.ci_low), _finite_or_none(v.ci_high),
                     int(bool(v.later_wins)))
                    for v in verdicts
                ],
            )
            for competition, weights in ema.items():
                db.execute("DELETE FROM ema WHERE competition = ?", (competition,))
                db.executemany(
                    "INSERT INTO ema (competition, hotkey, weight, round_id) VALUES (?, ?, ?, ?)",
                    [(competition, hk, float(w), round_id) for hk, w in weights.items()],
                )
            ids = list(evaluated_model_ids)
            db.executemany("UPDATE models SET last_round = ? WHERE id = ?", [(round_id, i) for i in ids])
            db.execute("UPDATE rounds SET status = ? WHERE id = ?", (ROUND_SCORED, round_id))

    def finish_round(self, round_id: int, status: str, error: str | None = None) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE rounds SET status = ?, error = COALESCE(?, error), finished_at = ? WHERE id = ?",
                (status, error, time.time(), round_id),
            )

    def round(self, round_id: int) -> RoundRecord | None:
        rows = self._query("SELECT * FROM rounds WHERE id = ?", (round_id,))
        return _round(rows[0]) if rows else None

    def rounds(self, limit: int = 50) -> list[RoundRecord]:
        rows = self._query("SELECT * FROM rounds ORDER BY id DESC LIMIT ?", (limit,))
        return [_round(r) for r in rows]

    def round_data(self, round_id: int) -> list[dict]:
        rows = self._query("SELECT * FROM round_data WHERE round_id = ? ORDER BY competition", (round_id,))
        return [
            {**dict(r), "page_ids": json.loads(r["page_ids"] or "[]"),
             "failed_pages": json.loads(r["failed_pages"] or "[]")}
            for r in rows
        ]

    def last_completed_round(self) -> RoundRecord | None:
        rows = self._query(
            "SELECT * FROM rounds WHERE status IN (?, ?, ?) ORDER BY id DESC LIMIT 1",
            (ROUND_SCORED, ROUND_WEIGHTS_SET, ROUND_DONE),
        )
        return _round(rows[0]) if rows else None

    def results(self, round_id: int) -> list[ResultRow]:
        rows = self._query("SELECT * FROM results WHERE round_id = ? ORDER BY competition, hotkey", (round_id,))
        return [_result(r) for r in rows]

    def latest_results(self, competition: str | None = None) -> dict[tuple[str, str], tuple[int, ResultRow]]:
        """The newest result of every (competition, hotkey): {(competition, hotkey): (round_id, row)}."""
        sql = (
            "SELECT r.* FROM results r JOIN (SELECT competition, hotkey, MAX(round_id) AS rid FROM results"
            " GROUP BY competition, hotkey) m ON r.competition = m.competition AND r.hotkey = m.hotkey"
            " AND r.round_id = m.rid"
        )
        rows = self._query(sql)
        out = {}
        for r in rows:
            if competition is None or r["competition"] == competition:
                out[(r["competition"], r["hotkey"])] = (int(r["round_id"]), _result(r))
        return out

    def verdicts(self, round_id: int) -> list[VerdictRow]:
        rows = self._query("SELECT * FROM verdicts WHERE round_id = ? ORDER BY competition, earlier, later",
                           (round_id,))
        return [
            VerdictRow(r["competition"], r["earlier"], r["later"], r["eps"], r["diff"], r["ci_low"], r["ci_high"],
                       bool(r["later_wins"]))
            for r in rows
        ]

    # ---- EMA ----------------------------------------------------------------------------------
    def ema(self, competition: str) -> dict[str, float]:
        rows = self._query("SELECT hotkey, weight FROM ema WHERE competition = ? ORDER BY hotkey", (competition,))
        return {r["hotkey"]: float(r["weight"]) for r in rows}

    def all_ema(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for r in self._query("SELECT competition, hotkey, weight FROM ema ORDER BY competition, hotkey"):
            out.setdefault(r["competition"], {})[r["hotkey"]] = float(r["weight"])
        return out

    # ---- registrations ------------------------------------------------------------------------
    def current_registrations(self) -> dict[str, Registration] | None:
        """hotkey -> stint for every hotkey registered at the latest recorded round; None if no round
        recorded registrations yet (then nobody is known to have left)."""
        # One statement: one snapshot, even while the daemon records the next round.
        rows = self._query(
            "SELECT r.* FROM meta m LEFT JOIN registrations r ON r.last_round = CAST(m.value AS INTEGER)"
            " WHERE m.key = ? ORDER BY r.uid",
            (_REGISTRATIONS_ROUND,),
        )
        if not rows:
            return None
        return {r["hotkey"]: _registration(r) for r in rows if r["hotkey"] is not None}

    def registrations(self, hotkey: str | None = None) -> list[Registration]:
        """Every recorded stint (of one hotkey, or all), oldest first."""
        if hotkey is None:
            rows = self._query("SELECT * FROM registrations ORDER BY id")
        else:
            rows = self._query("SELECT * FROM registrations WHERE hotkey = ? ORDER BY id", (hotkey,))
        return [_registration(r) for r in rows]

    # ---- weight setting ---------------------------------------------------------------------
    def record_weights_intent(self, round_id: int, block: int | None, uids: Sequence[int],
                              weights: Sequence[float]) -> int:
        """Written before the chain call, so that a crash in between is never followed by a re-send."""
        with self.transaction() as db:
            if db.execute(
                "SELECT 1 FROM weight_attempts WHERE round_id = ? AND status IN (?, ?)",
                (round_id, ATTEMPT_SUCCESS, ATTEMPT_UNKNOWN),
            ).fetchone():
                raise StateError(f"weights for round {round_id} were already sent")
            cur = db.execute(
                "INSERT INTO weight_attempts (round_id, block, uids, weights, status, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (round_id, block, json.dumps([int(u) for u in uids]), json.dumps([float(w) for w in weights]),
                 ATTEMPT_INTENT, time.time()),
            )
            return int(cur.lastrowid)

    def record_weights_outcome(self, attempt_id: int, success: bool, message: str = "",
                               block: int | None = None) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE weight_attempts SET status = ?, message = ?, block = COALESCE(?, block), finished_at = ?"
                " WHERE id = ?",
                (ATTEMPT_SUCCESS if success else ATTEMPT_FAILED, message[:2000], block, time.time(), attempt_id),
            )

    def record_weights_skipped(self, round_id: int, block: int | None, uids: Sequence[int],
                               weights: Sequence[float], message: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO weight_attempts (round_id, block, uids, weights, status, message, created_at,"
                " finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (round_id, block, json.dumps([int(u) for u in uids]),
                 json.dumps([w if w == w else None for w in map(float, weights)]), ATTEMPT_SKIPPED, message,
                 time.time(), time.time()),
            )

    def weight_attempts(self, round_id: int | None = None) -> list[AttemptRecord]:
        if round_id is None:
            rows = self._query("SELECT * FROM weight_attempts ORDER BY id")
        else:
            rows = self._query("SELECT * FROM weight_attempts WHERE round_id = ? ORDER BY id", (round_id,))
        return [
            AttemptRecord(int(r["id"]), int(r["round_id"]), r["block"], json.loads(r["uids"]),
                          [float("nan") if w is None else float(w) for w in json.loads(r["weights"])],
                          r["status"], r["message"], float(r["created_at"]))
            for r in rows
        ]

    def weights_sent(self, round_id: int) -> bool:
        """True when this round's weights reached the chain, or might have (never send them again)."""
        return bool(self._query(
            "SELECT 1 FROM weight_attempts WHERE round_id = ? AND status IN (?, ?, ?)",
            (round_id, ATTEMPT_SUCCESS, ATTEMPT_UNKNOWN, ATTEMPT_INTENT),
        ))

    def last_weights_success_block(self) -> int | None:
        rows = self._query(
            "SELECT block FROM weight_attempts WHERE status = ? AND block IS NOT NULL ORDER BY id DESC LIMIT 1",
            (ATTEMPT_SUCCESS,),
        )
        return int(rows[0]["block"]) if rows else None

    # ---- restart ----------------------------------------------------------------------------
    def recover(self) -> "Recovery":
        """Bring an interrupted state back to a consistent one; call once at start-up.

        - A round still `started` died mid-way: its partial work is thrown away (`discarded`),
          including any results it wrote (none: results are written only with the EMA).
        - A weights intent without an outcome may or may not have reached the chain: it becomes
          `unknown` and that round is never sent again (at most once beats at least once).
        - A round `scored` with no attempt can still have its weights set: it is returned for resumption.
        """
        with self.transaction() as db:
            discarded = [int(r[0]) for r in db.execute("SELECT id FROM rounds WHERE status = ?", (ROUND_STARTED,))]
            db.execute(
                "UPDATE rounds SET status = ?, error = 'interrupted (validator restarted)', finished_at = ?"
                " WHERE status = ?",
                (ROUND_DISCARDED, time.time(), ROUND_STARTED),
            )
            unknown = [int(r[0]) for r in db.execute(
                "SELECT round_id FROM weight_attempts WHERE status = ?", (ATTEMPT_INTENT,))]
            db.execute(
                "UPDATE weight_attempts SET status = ?, message = 'validator stopped before the outcome was known',"
                " finished_at = ? WHERE status = ?",
                (ATTEMPT_UNKNOWN, time.time(), ATTEMPT_INTENT),
            )
            for rid in unknown:
                db.execute("UPDATE rounds SET status = ?, finished_at = ? WHERE id = ? AND status = ?",
                           (ROUND_DONE, time.time(), rid, ROUND_SCORED))
            resumable = [int(r[0]) for r in db.execute(
                "SELECT id FROM rounds WHERE status = ? ORDER BY id", (ROUND_SCORED,))]
        return Recovery(discarded=discarded, unknown_weights=unknown, resumable=resumable)


@dataclass(frozen=True)
class Recovery:
    discarded: list[int]
    unknown_weights: list[int]
    resumable: list[int]


def _record_registrations(db: sqlite3.Connection, round_id: int, block: int, registered: Mapping[str, int]) -> None:
    """Extend the stints still held since the previous recorded round; open new ones for the rest."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (_REGISTRATIONS_ROUND,)).fetchone()
    previous = json.loads(row[0]) if row else None
    for hotkey, uid in sorted(registered.items()):
        extended = db.execute(
            "UPDATE registrations SET last_round = ?, last_block = ? WHERE hotkey = ? AND uid = ? AND last_round = ?",
            (round_id, block, hotkey, int(uid), previous),
        ).rowcount
        if not extended:
            db.execute(
                "INSERT INTO registrations (hotkey, uid, first_round, first_block, last_round, last_block)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (hotkey, int(uid), round_id, block, round_id, block),
            )
    # Kept apart from the rows so that a round whose metagraph was empty is recorded as such.
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (_REGISTRATIONS_ROUND, json.dumps(round_id)),
    )


def _registration(r: sqlite3.Row) -> Registration:
    return Registration(r["hotkey"], int(r["uid"]), int(r["first_round"]), int(r["first_block"]),
                        int(r["last_round"]), int(r["last_block"]))


def _model(r: sqlite3.Row) -> ModelRecord:
    return ModelRecord(
        id=int(r["id"]), hotkey=r["hotkey"], uid=r["uid"], competition=r["competition"], ref=r["ref"],
        block=int(r["block"]), parse_error=r["parse_error"], status=r["status"], reason=r["reason"],
        detail=r["detail"], model_dir=r["model_dir"], content_hash=r["content_hash"], attempts=int(r["attempts"]),
        last_round=r["last_round"],
    )


def _round(r: sqlite3.Row) -> RoundRecord:
    return RoundRecord(int(r["id"]), int(r["block"]), r["seed"], r["status"], r["error"], float(r["started_at"]),
                       r["finished_at"])


def _result(r: sqlite3.Row) -> ResultRow:
    return ResultRow(
        competition=r["competition"], hotkey=r["hotkey"], uid=r["uid"], model_id=r["model_id"],
        mean_loss=r["mean_loss"], ci_low=r["ci_low"], ci_high=r["ci_high"], n_docs=r["n_docs"] or 0,
        tokens_per_s=r["tokens_per_s"] or 0.0, seconds=r["seconds"] or 0.0, error=r["error"] or "",
        win_rate=r["win_rate"], wins=r["wins"], copy_of=r["copy_of"], losses=r["losses"],
    )
