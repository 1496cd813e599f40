"""The local chain's devnet and test controls: registrations, time, hyperparameters, and reads of
what the chain applied. Split from `subnet.chain.local` so each file keeps one job; `LocalChain`
inherits these (they share its connection and transactions)."""

from __future__ import annotations

import functools
import json
import math
import sqlite3
import time
from dataclasses import dataclass

from subnet.chain.base import ChainError

DEFAULT_REVEAL_PERIOD = 10  # blocks between a weights commit and its reveal, when commit-reveal is on


@dataclass(frozen=True)
class WeightSetting:
    """One applied `set_weights` call (revealed, under commit-reveal): who, when, and the
    normalised weights by uid."""

    validator: str
    block: int
    weights: dict[int, float]


def _db_errors(method):
    """A SQLite failure (locked, corrupt, read-only file) is the chain being unavailable."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as e:
            raise ChainError(f"local chain database {self.path}: {type(e).__name__}: {e}", code="unavailable") from e

    return wrapper


class LocalChainAdmin:
    """Mixed into `LocalChain`; every method runs in the chain's own transactions."""

    @_db_errors
    def pending_commits(self, validator_hotkey: str | None = None) -> list[tuple[str, int, int]]:
        """Unrevealed weight commits as (validator, commit block, reveal block), oldest first."""
        with self._write() as db:
            self._reveal_due(db, self._block_from(self._meta(db)))
            rows = db.execute("SELECT validator, block, reveal_block FROM weight_commits ORDER BY id").fetchall()
        return [(v, int(b), int(r)) for v, b, r in rows if validator_hotkey in (None, v)]

    @_db_errors
    def weights_rate_limit(self) -> int:
        return int(self._meta()["weights_rate_limit"])


    @_db_errors
    def register(self, hotkey_ss58: str, coldkey_ss58: str = "", stake: float = 0.0,
                 validator_permit: bool = False) -> int:
        """Give a hotkey a uid (the lowest free one, so a uid freed by `deregister` is reused, as on the
        real chain). Idempotent: a registered hotkey keeps its uid, and its coldkey, stake and permit
        are updated to the values given. Only a neuron with `validator_permit` may set weights."""
        if not hotkey_ss58:
            raise ValueError("hotkey_ss58 must not be empty")
        with self._write() as db:
            row = db.execute("SELECT uid FROM neurons WHERE hotkey = ?", (hotkey_ss58,)).fetchone()
            if row is not None:
                db.execute("UPDATE neurons SET coldkey = ?, stake = ?, validator_permit = ? WHERE uid = ?",
                           (coldkey_ss58, float(stake), int(bool(validator_permit)), row[0]))
                return int(row[0])
            (uid,) = db.execute(
                "SELECT MIN(u) FROM (SELECT 0 AS u UNION SELECT uid + 1 FROM neurons) "
                "WHERE u NOT IN (SELECT uid FROM neurons)"
            ).fetchone()
            db.execute(
                "INSERT INTO neurons (uid, hotkey, coldkey, stake, validator_permit, registered_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (uid, hotkey_ss58, coldkey_ss58, float(stake), int(bool(validator_permit)),
                 self._block_from(self._meta(db))),
            )
            return int(uid)

    @_db_errors
    def deregister(self, hotkey_ss58: str) -> int:
        """Remove a hotkey from the subnet and free its uid; returns that uid.

        The real chain never leaves a uid empty: a new registration replaces the hotkey with the
        lowest pruning score. Here the uid stays free until the next `register`, which takes it, so
        tests can replay both a departure and a uid's reuse by another hotkey. The hotkey's
        commitment stays stored (commitments are keyed by hotkey) but, like the real chain's
        metagraph, `commitments()` lists only registered hotkeys."""
        with self._write() as db:
            row = db.execute("SELECT uid FROM neurons WHERE hotkey = ?", (hotkey_ss58,)).fetchone()
            if row is None:
                raise ChainError(f"hotkey {hotkey_ss58} is not registered on netuid {self.netuid}",
                                 code="not_registered")
            db.execute("DELETE FROM neurons WHERE uid = ?", (row[0],))
            return int(row[0])

    @_db_errors
    def weights_of(self, validator_hotkey: str) -> dict[int, float]:
        """The latest weights a validator set (uid -> normalised weight); empty if it never set any.
        With commit-reveal, only revealed weights count: a pending commit is not weights."""
        self._reveal_now()
        rows = self._read("SELECT weights FROM weight_sets WHERE validator = ? ORDER BY id DESC LIMIT 1",
                          (validator_hotkey,))
        return {int(u): float(w) for u, w in json.loads(rows[0][0])} if rows else {}

    @_db_errors
    def weight_history(self) -> list[WeightSetting]:
        """Every applied weight setting (revealed, with commit-reveal), oldest first."""
        self._reveal_now()
        rows = self._read("SELECT validator, block, weights FROM weight_sets ORDER BY id")
        return [WeightSetting(v, int(b), {int(u): float(w) for u, w in json.loads(ws)}) for v, b, ws in rows]

    def _reveal_now(self) -> None:
        with self._write() as db:
            self._reveal_due(db, self._block_from(self._meta(db)))

    @_db_errors
    def advance(self, blocks: int) -> int:
        """Move the chain `blocks` blocks forward at once (tests need not sleep); returns the new block."""
        if blocks < 0:
            raise ValueError("a chain cannot go back in time")
        with self._write() as db:
            db.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + ? AS TEXT) WHERE key = 'offset'",
                       (int(blocks),))
            return self._block_from(self._meta(db))

    @_db_errors
    def set_block_time(self, block_time: float) -> None:
        """Change the block time for every process, keeping the current block where it is."""
        if block_time <= 0 or not math.isfinite(block_time):
            raise ValueError(f"block_time must be a positive number of seconds, got {block_time!r}")
        with self._write() as db:
            meta = self._meta(db)
            now = time.time()
            block = self._block_from(meta, now)
            offset = int(meta["offset"])
            # Keep `block` and the progress into it unchanged under the new block time.
            old_bt = float(meta["block_time"])
            into = ((now - float(meta["genesis"])) % old_bt) / old_bt
            genesis = now - ((block - offset) + into) * block_time
            db.execute("UPDATE meta SET value = ? WHERE key = 'genesis'", (repr(genesis),))
            db.execute("UPDATE meta SET value = ? WHERE key = 'block_time'", (repr(float(block_time)),))

    @property
    def block_time(self) -> float:
        return float(self._meta()["block_time"])

    def set_weights_rate_limit(self, blocks: int) -> None:
        self._set_meta("weights_rate_limit", int(blocks))

    def set_commit_rate_limit(self, blocks: int) -> None:
        self._set_meta("commit_rate_limit", int(blocks))

    def set_min_allowed_weights(self, count: int) -> None:
        """The runtime's MinAllowedWeights: a weight vector needs min(subnet_n, count) entries."""
        self._set_meta("min_allowed_weights", int(count))

    def set_commit_reveal(self, enabled: bool, reveal_period: int = DEFAULT_REVEAL_PERIOD) -> None:
        """Commit-reveal weights: each weight setting is committed and applied `reveal_period` blocks later."""
        if reveal_period < 1:
            raise ValueError(f"reveal_period must be >= 1 block, got {reveal_period}")
        self._set_meta("reveal_period", int(reveal_period))
        self._set_meta("commit_reveal", int(bool(enabled)))

    @property
    def commit_reveal(self) -> bool:
        return self._meta()["commit_reveal"] == "1"

    @_db_errors
    def _set_meta(self, key: str, value: int) -> None:
        if value < 0:
            raise ValueError(f"{key} must be >= 0, got {value}")
        with self._write() as db:
            db.execute("UPDATE meta SET value = ? WHERE key = ?", (str(value), key))
