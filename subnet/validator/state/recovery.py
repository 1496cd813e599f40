"""Start-up recovery of a state left by a killed daemon."""

from __future__ import annotations

import time
from dataclasses import dataclass

from subnet.validator.state.records import (
    ATTEMPT_INTENT,
    ATTEMPT_UNKNOWN,
    ROUND_DISCARDED,
    ROUND_DONE,
    ROUND_SCORED,
    ROUND_STARTED,
)


@dataclass(frozen=True)
class Recovery:
    discarded: list[int]
    unknown_weights: list[int]
    resumable: list[int]


class RecoveryMixin:
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
