"""An embedded chain in one SQLite file, for devnet and tests.

Several processes (a validator and its miners) open the same file at once, so every write runs in
an immediate transaction on a WAL database with a busy timeout. Blocks are not produced by anyone:
they follow the wall clock from a genesis timestamp stored in the file,
`block = floor((now - genesis) / block_time) + offset`, so every process agrees on the current
block without talking to the others. The rules the validator and miner depend on mirror the real
chain: commitments keep the block they were made in, weights and commitments are rate limited per
hotkey in blocks, only registered hotkeys may do either, only those with a validator permit may
set weights, a weight vector must have `min(subnet_n, MinAllowedWeights)` entries (met by
`subnet.chain.weights`), and with commit-reveal on (`set_commit_reveal`) weights are committed and
only applied `reveal_period` blocks later: the "reveal round" of the local chain is that block.

Any SQLite failure (a locked or broken database file) is a `ChainError` with code 'unavailable',
never a raw `sqlite3` exception.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from subnet.chain.base import ChainError, Commitment, Metagraph, Neuron, WeightsResult
from subnet.chain.local_admin import (  # noqa: F401 - WeightSetting and the default re-exported
    DEFAULT_REVEAL_PERIOD,
    LocalChainAdmin,
    WeightSetting,
    _db_errors,
)
from subnet.chain.weights import fill_floats_to_minimum, required_count, weights_problem

MAX_COMMITMENT_BYTES = 128
DEFAULT_WEIGHTS_RATE_LIMIT = 100  # blocks, as on most mainnet subnets
DEFAULT_COMMIT_RATE_LIMIT = 1  # blocks: one commitment per hotkey per block
_BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS neurons (
    uid INTEGER PRIMARY KEY,
    hotkey TEXT NOT NULL UNIQUE,
    coldkey TEXT NOT NULL,
    stake REAL NOT NULL,
    validator_permit INTEGER NOT NULL,
    last_update INTEGER NOT NULL DEFAULT 0,
    registered_at INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS commitments (
    hotkey TEXT PRIMARY KEY,
    block INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS weight_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    validator TEXT NOT NULL,
    block INTEGER NOT NULL,
    weights TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS weight_commits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    validator TEXT NOT NULL,
    block INTEGER NOT NULL,
    reveal_block INTEGER NOT NULL,
    weights TEXT NOT NULL
);
"""




class LocalChain(LocalChainAdmin):
    """`Chain` over a SQLite file. `wallet` (a bittensor Wallet) signs commits and weights; without
    one the chain is read-only. `block_time` only applies when this call creates the file: the
    file's stored value wins afterwards, so every process sees the same blocks."""

    @_db_errors
    def __init__(self, path: str | Path, netuid: int = 1, wallet: Any = None, block_time: float = 12.0) -> None:
        if block_time <= 0 or not math.isfinite(block_time):
            raise ValueError(f"block_time must be a positive number of seconds, got {block_time!r}")
        self.path = Path(path)
        self.netuid = int(netuid)
        self.wallet = wallet
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            str(self.path), timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self._db.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        with self._write() as db:
            # One statement at a time: executescript would commit the surrounding transaction.
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                db.execute(statement)
            columns = {row[1] for row in db.execute("PRAGMA table_info(neurons)")}
            if "registered_at" not in columns:  # a chain file made before registrations kept their block
                db.execute("ALTER TABLE neurons ADD COLUMN registered_at INTEGER NOT NULL DEFAULT 0")
            defaults = {
                "genesis": repr(time.time()),
                "block_time": repr(float(block_time)),
                "offset": "0",
                "weights_rate_limit": str(DEFAULT_WEIGHTS_RATE_LIMIT),
                "commit_rate_limit": str(DEFAULT_COMMIT_RATE_LIMIT),
                "commit_reveal": "0",
                "reveal_period": str(DEFAULT_REVEAL_PERIOD),
                "min_allowed_weights": "0",
            }
            db.executemany("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", defaults.items())

    # ------------------------------------------------------------------ plumbing

    class _Transaction:
        def __init__(self, chain: LocalChain) -> None:
            self.chain = chain

        def __enter__(self) -> sqlite3.Connection:
            self.chain._lock.acquire()
            try:
                self.chain._db.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.chain._lock.release()
                raise
            return self.chain._db

        def __exit__(self, exc_type, exc, tb) -> None:
            try:
                self.chain._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
            finally:
                self.chain._lock.release()

    def _write(self) -> _Transaction:
        """An immediate (write-locking) transaction: read-check-write sequences stay atomic across processes."""
        if self._db is None:
            raise ChainError(f"local chain {self.path} is closed", code="closed")
        return LocalChain._Transaction(self)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        if self._db is None:
            raise ChainError(f"local chain {self.path} is closed", code="closed")
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    def _meta(self, db: sqlite3.Connection | None = None) -> dict[str, str]:
        rows = (db.execute("SELECT key, value FROM meta").fetchall() if db is not None
                else self._read("SELECT key, value FROM meta"))
        return dict(rows)

    @staticmethod
    def _block_from(meta: dict[str, str], now: float | None = None) -> int:
        now = time.time() if now is None else now
        elapsed = max(0.0, now - float(meta["genesis"]))
        return int(elapsed // float(meta["block_time"])) + int(meta["offset"])

    def _hotkey(self) -> str:
        """The wallet's hotkey address. Nothing is signed here, so the public key file is enough
        (an encrypted hotkey is never unlocked, and never prompts)."""
        if self.wallet is None:
            raise ChainError("this chain handle has no wallet; it is read-only", code="no_wallet")
        try:
            return self.wallet.hotkeypub.ss58_address
        except (AttributeError, OSError):
            return self.wallet.hotkey.ss58_address

    # ------------------------------------------------------------------ Chain protocol

    @_db_errors
    def current_block(self) -> int:
        return self._block_from(self._meta())

    @_db_errors
    def block_hash(self, block: int) -> str:
        block = int(block)
        current = self.current_block()
        if block < 0 or block > current:
            raise ChainError(f"block {block} does not exist yet (current block {current})", code="unknown_block")
        return "0x" + hashlib.sha256(f"local:{self.netuid}:{block}".encode()).hexdigest()

    @_db_errors
    def metagraph(self) -> Metagraph:
        with self._lock:
            block = self.current_block()
            rows = self._read(
                "SELECT uid, hotkey, coldkey, stake, validator_permit, last_update, registered_at FROM neurons "
                "ORDER BY uid"
            )
        self._reveal_now()
        latest = self._read("SELECT validator, weights FROM weight_sets WHERE id IN "
                            "(SELECT MAX(id) FROM weight_sets GROUP BY validator)")
        epoch = _epoch(rows, {v: json.loads(ws) for v, ws in latest})
        neurons = tuple(Neuron(uid, hk, ck, float(stake), bool(permit), int(last), int(registered),
                               *epoch.get(uid, (0.0, 0.0, 0.0)))
                        for uid, hk, ck, stake, permit, last, registered in rows)
        return Metagraph(netuid=self.netuid, block=block, neurons=neurons)

    @_db_errors
    def commitments(self) -> list[Commitment]:
        rows = self._read(
            "SELECT c.hotkey, c.block, c.data FROM commitments c JOIN neurons n ON n.hotkey = c.hotkey "
            "ORDER BY c.block DESC, c.hotkey"
        )
        return [Commitment(hotkey, int(block), data) for hotkey, block, data in rows]

    def weight_holders(self) -> dict[str, float]:
        """Yuma's incentive over each validator's latest revealed weights, computed at this read."""
        return self.metagraph().incentive_by_hotkey()

    @_db_errors
    def commit(self, data: str) -> int:
        hotkey = self._hotkey()
        if not isinstance(data, str):
            raise ChainError(f"commitment must be text, got {type(data).__name__}", code="invalid_commitment")
        size = len(data.encode("utf-8", errors="surrogatepass"))
        if size > MAX_COMMITMENT_BYTES:
            raise ChainError(f"commitment is {size} bytes, the limit is {MAX_COMMITMENT_BYTES}", code="too_long")
        with self._write() as db:
            meta = self._meta(db)
            block = self._block_from(meta)
            if db.execute("SELECT 1 FROM neurons WHERE hotkey = ?", (hotkey,)).fetchone() is None:
                raise ChainError(f"hotkey {hotkey} is not registered on netuid {self.netuid}", code="not_registered")
            previous = db.execute("SELECT block FROM commitments WHERE hotkey = ?", (hotkey,)).fetchone()
            limit = int(meta["commit_rate_limit"])
            if previous is not None and block - int(previous[0]) < limit:
                raise ChainError(
                    f"hotkey {hotkey} committed at block {previous[0]}; the commit rate limit is {limit} "
                    f"block(s), current block {block}",
                    code="rate_limited",
                )
            db.execute(
                "INSERT INTO commitments (hotkey, block, data) VALUES (?, ?, ?) "
                "ON CONFLICT(hotkey) DO UPDATE SET block = excluded.block, data = excluded.data",
                (hotkey, block, data),
            )
        return block

    @_db_errors
    def set_weights(self, uids: Sequence[int], weights: Sequence[float], version_key: int) -> WeightsResult:
        """As on the real chain; a locked or broken database raises ChainError('unavailable')."""
        try:
            hotkey = self._hotkey()
        except ChainError as e:
            return WeightsResult(False, str(e), e.code)
        problem = weights_problem(uids, weights)
        if problem:
            return WeightsResult(False, problem, "invalid_weights")
        with self._write() as db:
            meta = self._meta(db)
            block = self._block_from(meta)
            self._reveal_due(db, block)
            row = db.execute("SELECT uid, validator_permit, last_update FROM neurons WHERE hotkey = ?",
                             (hotkey,)).fetchone()
            if row is None:
                return WeightsResult(False, f"hotkey {hotkey} is not registered on netuid {self.netuid}",
                                     "not_registered", block)
            if not row[1]:
                # As on the real chain: only neurons holding a validator permit may set weights.
                return WeightsResult(False, f"hotkey {hotkey} (uid {row[0]}) has no validator permit on netuid "
                                     f"{self.netuid}", "no_permit", block)
            registered = [uid for (uid,) in db.execute("SELECT uid FROM neurons ORDER BY uid")]
            unknown = sorted({int(u) for u, w in zip(uids, weights) if w > 0} - set(registered))
            if unknown:
                return WeightsResult(False, f"uids {unknown} are not registered", "invalid_weights", block)
            limit, last = int(meta["weights_rate_limit"]), int(row[2])
            if last > 0 and block - last < limit:
                return WeightsResult(False, f"weights last set at block {last}; the rate limit is {limit} blocks, "
                                            f"retry in {limit - (block - last)} block(s)", "rate_limited", block)
            required = required_count(len(registered), int(meta["min_allowed_weights"]))
            kept = [(int(u), float(w)) for u, w in zip(uids, weights) if int(u) in set(registered)]
            filled_uids, filled = fill_floats_to_minimum([u for u, _ in kept], [w for _, w in kept], registered,
                                                         required)
            total = sum(filled)
            normalised = json.dumps(sorted((u, w / total) for u, w in zip(filled_uids, filled)))
            db.execute("UPDATE neurons SET last_update = ? WHERE uid = ?", (block, row[0]))
            if meta["commit_reveal"] == "1":
                reveal = block + int(meta["reveal_period"])
                db.execute("INSERT INTO weight_commits (validator, block, reveal_block, weights) VALUES (?, ?, ?, ?)",
                           (hotkey, block, reveal, normalised))
                return WeightsResult(True, f"weights committed on {len(filled_uids)} uid(s); revealed at block "
                                           f"{reveal}", "", block, reveal_round=reveal)
            db.execute("INSERT INTO weight_sets (validator, block, weights) VALUES (?, ?, ?)",
                       (hotkey, block, normalised))
        return WeightsResult(True, f"weights set on {len(filled_uids)} uid(s)", "", block)

    def _reveal_due(self, db: sqlite3.Connection, block: int) -> None:
        """Apply every commit whose reveal block has come, as the chain does at its reveal epoch
        (a committer that is no longer registered is dropped, as a failed reveal is)."""
        due = db.execute("SELECT id, validator, reveal_block, weights FROM weight_commits WHERE reveal_block <= ? "
                         "ORDER BY id", (block,)).fetchall()
        for commit_id, validator, reveal_block, weights in due:
            if db.execute("SELECT 1 FROM neurons WHERE hotkey = ?", (validator,)).fetchone() is not None:
                db.execute("INSERT INTO weight_sets (validator, block, weights) VALUES (?, ?, ?)",
                           (validator, reveal_block, weights))
            db.execute("DELETE FROM weight_commits WHERE id = ?", (commit_id,))

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> LocalChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocalChain(path={str(self.path)!r}, netuid={self.netuid})"


def _epoch(rows, latest: dict[str, list]) -> dict[int, tuple[float, float, float]]:
    """Yuma over each validator's latest weights, as the runtime's epoch would compute it now:
    uid -> (incentive, consensus, validator trust). The real chain runs it once a tempo; the local
    one at every read, which only makes agreement visible sooner."""
    from subnet.scoring.yuma import yuma

    if not rows:
        return {}
    size = max(r[0] for r in rows) + 1
    uid_of = {r[1]: r[0] for r in rows}
    stake, permit, w = np.zeros(size), np.zeros(size, dtype=bool), np.zeros((size, size))
    for uid, hk, _ck, st, pm, *_ in rows:
        stake[uid], permit[uid] = float(st), bool(pm)
    for validator, pairs in latest.items():
        if validator in uid_of:
            for u, x in pairs:
                if 0 <= int(u) < size:
                    w[uid_of[validator], int(u)] = float(x)
    r = yuma(stake, w, permit)
    return {int(u): (float(r.incentive[u]), float(r.consensus[u]), float(r.validator_trust[u])) for u in uid_of.values()}
