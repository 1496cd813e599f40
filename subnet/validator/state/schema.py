"""Schema migrations of the state database, in order; `PRAGMA user_version` records how many ran.

Add a change as a new function at the end of MIGRATIONS; never edit one that has shipped.
"""

from __future__ import annotations

import math
import sqlite3
from typing import Callable


def _run_script(db: sqlite3.Connection, script: str) -> None:
    """Statement by statement: `executescript` would commit the migration's transaction half-way."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


# The first schema, as it was: later migrations change it, and a state file made by any version
# must replay the same steps.
_INITIAL_SCHEMA = """
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


def _m1_initial(db: sqlite3.Connection) -> None:
    _run_script(db, _INITIAL_SCHEMA)


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


def _m4_weights_commits(db: sqlite3.Connection) -> None:
    """Weight attempts keep the chain's code for a refusal, and the reveal round of a commit.

    On a commit-reveal subnet a successful attempt is a *commit*: the chain applies the weights only
    at `reveal_round`, so the status shows "committed, reveals at round R" rather than weights set.
    """
    columns = {row[1] for row in db.execute("PRAGMA table_info(weight_attempts)")}
    for name, kind in (("reveal_round", "INTEGER"), ("code", "TEXT")):
        if name not in columns:
            db.execute(f"ALTER TABLE weight_attempts ADD COLUMN {name} {kind}")


def _m5_model_backoff(db: sqlite3.Connection) -> None:
    """Transient failures of a model (our store, disk or checks) are retried, then parked with backoff.

    `transient_failures` counts consecutive ones; `retry_after` (unix time) is when a parked model
    may be scheduled again. Columns are added only if absent, so this runs safely after any other
    migration that touched the models table.
    """
    columns = {row[1] for row in db.execute("PRAGMA table_info(models)")}
    if "transient_failures" not in columns:
        db.execute("ALTER TABLE models ADD COLUMN transient_failures INTEGER NOT NULL DEFAULT 0")
    if "retry_after" not in columns:
        db.execute("ALTER TABLE models ADD COLUMN retry_after REAL")


def _m6_round_data_identity(db: sqlite3.Connection) -> None:
    """What each round's data was chosen from (source, dataset revision, dumps with their sizes,
    revisions seen, replaced pages, dropped texts) as JSON, and why the round's data was refused.

    Two validators compare rounds by these: equal identity and digest means the same documents.
    """
    columns = {row[1] for row in db.execute("PRAGMA table_info(round_data)")}
    for name in ("identity", "error"):
        if name not in columns:
            db.execute(f"ALTER TABLE round_data ADD COLUMN {name} TEXT")


def _m7_evidence_and_one_loss(db: sqlite3.Connection) -> None:
    """Evidence across rounds (issue 22), earned advantages (issue 20), and the one loss definition.

    `pair_evidence` pools each (earlier, later) pair's per-round statistics; `earned_advantage`
    keeps what a model earned with the verdict that earned it. Results stored before this
    migration hold the mean of per-document losses: they are recomputed from their stored
    per-document sums as total NLL over total tokens, so every stored "loss" means the same.
    Verdict rows written before it hold absolute differences of per-document means (later ones:
    relative differences L_later / L_earlier - 1); they are history, nothing reads them to decide.
    """
    _run_script(
        db,
        """
        CREATE TABLE IF NOT EXISTS pair_evidence (
            competition TEXT NOT NULL,
            earlier_id INTEGER NOT NULL,
            later_id INTEGER NOT NULL,
            earlier TEXT NOT NULL,
            later TEXT NOT NULL,
            weighted_sum REAL NOT NULL,
            information REAL NOT NULL,
            rounds INTEGER NOT NULL,
            eps REAL,
            acc_low REAL,
            acc_high REAL,
            later_wins INTEGER NOT NULL DEFAULT 0,
            round_id INTEGER,
            rho REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (competition, earlier_id, later_id)
        );
        CREATE TABLE IF NOT EXISTS earned_advantage (
            competition TEXT NOT NULL,
            model_id INTEGER NOT NULL,
            hotkey TEXT NOT NULL,
            eps REAL NOT NULL,
            leader TEXT NOT NULL,
            leader_id INTEGER,
            improvement_low REAL NOT NULL,
            improvement_high REAL NOT NULL,
            rounds INTEGER NOT NULL,
            by_failures INTEGER NOT NULL DEFAULT 0,
            round_id INTEGER,
            PRIMARY KEY (competition, model_id)
        )
        """,
    )
    from subnet.eval.types import DocLosses
    from subnet.scoring.loss import competition_loss, document_nll

    rows = db.execute("SELECT rowid, losses FROM results WHERE losses IS NOT NULL").fetchall()
    for rowid, blob in rows:
        try:
            losses = DocLosses.from_bytes(bytes(blob))
        except Exception:  # noqa: BLE001, S112 - an unreadable old blob keeps its old numbers
            continue
        iv = competition_loss(document_nll(losses), losses.n_tokens)
        finite = [x if math.isfinite(x) else None for x in (iv.mean, iv.low, iv.high)]
        db.execute("UPDATE results SET mean_loss = ?, ci_low = ?, ci_high = ? WHERE rowid = ?", (*finite, rowid))

def _m8_resumable_rounds(db: sqlite3.Connection) -> None:
    """Resumable rounds, health and a bounded database.

    `round_progress` holds a round's plan (one row per scheduled model) and each model's losses
    as soon as it is scored, so a stopped round resumes with the models still missing; the rows
    go when the round's results land. `rounds.n_due` / `n_evaluated` let health tell a round that
    evaluated nothing that was due. The results index serves `/scores` (newest row per model).
    """
    columns = {r[1] for r in db.execute("PRAGMA table_info(rounds)")}
    for column in ("n_due", "n_evaluated"):
        if column not in columns:
            db.execute(f"ALTER TABLE rounds ADD COLUMN {column} INTEGER")
    _run_script(
        db,
        """
        CREATE TABLE IF NOT EXISTS round_progress (
            round_id INTEGER NOT NULL REFERENCES rounds(id),
            competition TEXT NOT NULL,
            hotkey TEXT NOT NULL,
            model_id INTEGER,
            scored_at REAL,
            error TEXT,
            detail TEXT,
            seconds REAL,
            tokens_per_s REAL,
            losses BLOB,
            PRIMARY KEY (round_id, competition, hotkey)
        );
        CREATE INDEX IF NOT EXISTS results_latest ON results (competition, hotkey, round_id)
        """
    )





def _m9_windows(db: sqlite3.Connection) -> None:
    """Evidence keyed by seed window (issue 25): each model's losses once per window, each pair's
    statistic once per window, and the window each round scored (a backfill round scores an older one).

    `window_scores` keeps which models were scored in which window (losses until retention drops
    them); `window_pairs` keeps one statistic per pair and window, the public evidence decisions
    are folded from. Both are keyed so that a window can never count twice.
    """
    columns = {r[1] for r in db.execute("PRAGMA table_info(rounds)")}
    if "window_block" not in columns:
        db.execute("ALTER TABLE rounds ADD COLUMN window_block INTEGER")
    _run_script(
        db,
        """
        CREATE TABLE IF NOT EXISTS window_scores (
            competition TEXT NOT NULL,
            window_block INTEGER NOT NULL,
            model_id INTEGER NOT NULL,
            hotkey TEXT NOT NULL,
            n_docs INTEGER NOT NULL,
            n_finite INTEGER NOT NULL,
            digest TEXT,
            round_id INTEGER,
            losses BLOB,
            PRIMARY KEY (competition, window_block, model_id)
        );
        CREATE TABLE IF NOT EXISTS window_pairs (
            competition TEXT NOT NULL,
            window_block INTEGER NOT NULL,
            earlier_id INTEGER NOT NULL,
            later_id INTEGER NOT NULL,
            log_ratio REAL,
            variance REAL,
            n INTEGER NOT NULL,
            earlier_failed INTEGER NOT NULL,
            later_failed INTEGER NOT NULL,
            round_id INTEGER,
            PRIMARY KEY (competition, window_block, earlier_id, later_id)
        );
        CREATE INDEX IF NOT EXISTS window_pairs_pair ON window_pairs (competition, earlier_id, later_id)
        """
    )


# Append only. Never edit a migration that has shipped: add a new one.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _m1_initial, _m2_meta, _m3_registrations, _m4_weights_commits, _m5_model_backoff, _m6_round_data_identity,
    _m7_evidence_and_one_loss,
    _m8_resumable_rounds,
    _m9_windows,
]
SCHEMA_VERSION = len(MIGRATIONS)
