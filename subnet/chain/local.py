"""An embedded chain in one SQLite file, for devnet and tests.

Several processes (a validator and its miners) open the same file at once, so every write runs in
an immediate transaction on a WAL database with a busy timeout. Blocks are not produced by anyone:
they follow the wall clock from a genesis timestamp stored in the file,
`block = floor((now - genesis) / block_time) + offset`, so every process agrees on the current
block without talking to the others. The rules the validator and miner depend on mirror the real
chain: commitments keep the block they were made in, weights and commitments are rate limited per
hotkey in blocks, only registered hotkeys may do either, and only those with a validator permit
may set weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from subnet.chain.base import ChainError, Commitment, Metagraph, Neuron, WeightsResult

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
    last_update INTEGER NOT NULL DEFAULT 0
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
"""


@dataclass(frozen=True)
class WeightSetting:
    """One accepted `set_weights` call: who, when, and the normalised weights by uid."""

    validator: str
    block: int
    weights: dict[int, float]


class LocalChain:
    """`Chain` over a SQLite file. `wallet` (a bittensor Wallet) signs commits and weights; without
    one the chain is read-only. `block_time` only applies when this call creates the file: the
    file's stored value wins afterwards, so every process sees the same blocks."""

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
            defaults = {
                "genesis": repr(time.time()),
                "block_time": repr(float(block_time)),
                "offset": "0",
                "weights_rate_limit": str(DEFAULT_WEIGHTS_RATE_LIMIT),
                "commit_rate_limit": str(DEFAULT_COMMIT_RATE_LIMIT),
            }
            db.executemany("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", defaults.items())

    # ------------------------------------------------------------------ plumbing

    class _Transaction:
        def __init__(self, chain: "LocalChain") -> None:
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

    def _write(self) -> "_Transaction":
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

    def current_block(self) -> int:
        return self._block_from(self._meta())

    def block_hash(self, block: int) -> str:
        block = int(block)
        current = self.current_block()
        if block < 0 or block > current:
            raise ChainError(f"block {block} does not exist yet (current block {current})", code="unknown_block")
        return "0x" + hashlib.sha256(f"local:{self.netuid}:{block}".encode()).hexdigest()

    def metagraph(self) -> Metagraph:
        with self._lock:
            block = self.current_block()
            rows = self._read(
                "SELECT uid, hotkey, coldkey, stake, validator_permit, last_update FROM neurons ORDER BY uid"
            )
        neurons = tuple(Neuron(uid, hk, ck, float(stake), bool(permit), int(last))
                        for uid, hk, ck, stake, permit, last in rows)
        return Metagraph(netuid=self.netuid, block=block, neurons=neurons)

    def commitments(self) -> list[Commitment]:
        rows = self._read(
            "SELECT c.hotkey, c.block, c.data FROM commitments c JOIN neurons n ON n.hotkey = c.hotkey "
            "ORDER BY c.block DESC, c.hotkey"
        )
        return [Commitment(hotkey, int(block), data) for hotkey, block, data in rows]

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

    def set_weights(self, uids: Sequence[int], weights: Sequence[float], version_key: int) -> WeightsResult:
        try:
            hotkey = self._hotkey()
        except ChainError as e:
            return WeightsResult(False, str(e), e.code)
        problem = weights_problem(uids, weights)
        if problem:
            return WeightsResult(False, problem, "invalid_weights")
        total = float(sum(weights))
        normalised = {int(u): float(w) / total for u, w in zip(uids, weights) if w > 0}
        with self._write() as db:
            meta = self._meta(db)
            block = self._block_from(meta)
            row = db.execute("SELECT uid, validator_permit FROM neurons WHERE hotkey = ?", (hotkey,)).fetchone()
            if row is None:
                return WeightsResult(False, f"hotkey {hotkey} is not registered on netuid {self.netuid}",
                                     "not_registered", block)
            if not row[1]:
                # As on the real chain: only neurons holding a validator permit may set weights.
                return WeightsResult(False, f"hotkey {hotkey} (uid {row[0]}) has no validator permit on netuid "
                                     f"{self.netuid}", "no_permit", block)
            known = {uid for (uid,) in db.execute("SELECT uid FROM neurons")}
            unknown = sorted(set(normalised) - known)
            if unknown:
                return WeightsResult(False, f"uids {unknown} are not registered", "invalid_weights", block)
            limit = int(meta["weights_rate_limit"])
            (last,) = db.execute("SELECT MAX(block) FROM weight_sets WHERE validator = ?", (hotkey,)).fetchone()
            if last is not None and block - int(last) < limit:
                return WeightsResult(
                    False,
                    f"weights last set at block {last}; the rate limit is {limit} blocks, "
                    f"retry in {limit - (block - last)} block(s)",
                    "rate_limited",
                    block,
                )
            db.execute("UPDATE neurons SET last_update = ? WHERE uid = ?", (block, row[0]))
            db.execute(
                "INSERT INTO weight_sets (validator, block, weights) VALUES (?, ?, ?)",
                (hotkey, block, json.dumps(sorted(normalised.items()))),
            )
        return WeightsResult(True, f"weights set on {len(normalised)} uid(s)", "", block)

    def weights_rate_limit(self) -> int:
        return int(self._meta()["weights_rate_limit"])

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> "LocalChain":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ devnet and test helpers

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
                "INSERT INTO neurons (uid, hotkey, coldkey, stake, validator_permit) VALUES (?, ?, ?, ?, ?)",
                (uid, hotkey_ss58, coldkey_ss58, float(stake), int(bool(validator_permit))),
            )
            return int(uid)

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

    def weights_of(self, validator_hotkey: str) -> dict[int, float]:
        """The latest weights a validator set (uid -> normalised weight); empty if it never set any."""
        rows = self._read("SELECT weights FROM weight_sets WHERE validator = ? ORDER BY id DESC LIMIT 1",
                          (validator_hotkey,))
        return {int(u): float(w) for u, w in json.loads(rows[0][0])} if rows else {}

    def weight_history(self) -> list[WeightSetting]:
        """Every accepted weight setting, oldest first."""
        rows = self._read("SELECT validator, block, weights FROM weight_sets ORDER BY id")
        return [WeightSetting(v, int(b), {int(u): float(w) for u, w in json.loads(ws)}) for v, b, ws in rows]

    def advance(self, blocks: int) -> int:
        """Move the chain `blocks` blocks forward at once (tests need not sleep); returns the new block."""
        if blocks < 0:
            raise ValueError("a chain cannot go back in time")
        with self._write() as db:
            db.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + ? AS TEXT) WHERE key = 'offset'",
                       (int(blocks),))
            return self._block_from(self._meta(db))

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

    def _set_meta(self, key: str, value: int) -> None:
        if value < 0:
            raise ValueError(f"{key} must be >= 0, got {value}")
        with self._write() as db:
            db.execute("UPDATE meta SET value = ? WHERE key = ?", (str(value), key))

    def __repr__(self) -> str:
        return f"LocalChain(path={str(self.path)!r}, netuid={self.netuid})"


def weights_problem(uids: Sequence[int], weights: Sequence[float]) -> str:
    """Why a weight vector would be rejected, or '' if it is acceptable (shared by both adapters)."""
    if len(uids) != len(weights):
        return f"uids and weights differ in length ({len(uids)} vs {len(weights)})"
    if len(set(int(u) for u in uids)) != len(uids):
        return "duplicate uids"
    if any(int(u) < 0 for u in uids):
        return "negative uid"
    if any(not math.isfinite(float(w)) or float(w) < 0 for w in weights):
        return "weights must be finite and non-negative"
    if not weights or float(sum(weights)) <= 0:
        return "all weights are zero; nothing to set"
    return ""
