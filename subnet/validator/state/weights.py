"""Weight-setting attempts: intent before the chain call, outcome after, so nothing is sent twice."""

from __future__ import annotations

import json
import time
from typing import Sequence

from subnet.validator.state.records import (
    ATTEMPT_FAILED,
    ATTEMPT_INTENT,
    ATTEMPT_SKIPPED,
    ATTEMPT_SUCCESS,
    ATTEMPT_UNKNOWN,
    AttemptRecord,
    StateError,
)


class WeightAttemptsMixin:
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
                               block: int | None = None, *, code: str = "", reveal_round: int | None = None,
                               unknown: bool = False) -> None:
        """`reveal_round` marks a commit (not yet weights); `unknown` an attempt that may have landed."""
        status = ATTEMPT_SUCCESS if success else ATTEMPT_UNKNOWN if unknown else ATTEMPT_FAILED
        with self.transaction() as db:
            db.execute(
                "UPDATE weight_attempts SET status = ?, message = ?, block = COALESCE(?, block), finished_at = ?,"
                " code = ?, reveal_round = ? WHERE id = ?",
                (status, message[:2000], block, time.time(), code or None, reveal_round, attempt_id),
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
        return [_attempt(r) for r in rows]

    def latest_weights_attempt(self) -> AttemptRecord | None:
        """The newest attempt that reached the chain (success, or unknown), for the status display."""
        rows = self._query("SELECT * FROM weight_attempts WHERE status IN (?, ?) ORDER BY id DESC LIMIT 1",
                           (ATTEMPT_SUCCESS, ATTEMPT_UNKNOWN))
        return _attempt(rows[0]) if rows else None

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


def _attempt(r) -> AttemptRecord:
    keys = r.keys()
    return AttemptRecord(int(r["id"]), int(r["round_id"]), r["block"], json.loads(r["uids"]),
                         [float("nan") if w is None else float(w) for w in json.loads(r["weights"])],
                         r["status"], r["message"], float(r["created_at"]),
                         r["reveal_round"] if "reveal_round" in keys else None,
                         r["code"] if "code" in keys else None)


def weights_status_text(attempt: AttemptRecord | None) -> str:
    """What the chain holds from us: "committed, reveals at round R" is not weights set."""
    if attempt is None:
        return "no weights sent yet"
    if attempt.status == ATTEMPT_UNKNOWN:
        return f"outcome unknown (round {attempt.round_id}, block {attempt.block})"
    if attempt.reveal_round is not None:
        return f"committed, reveals at round {attempt.reveal_round}"
    return f"weights set at block {attempt.block}"
