"""Start-up recovery of a state left by a killed daemon."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from subnet.validator.state.records import (
    ATTEMPT_INTENT,
    ATTEMPT_UNKNOWN,
    ROUND_DISCARDED,
    ROUND_DONE,
    ROUND_INTERRUPTED,
    ROUND_SCORED,
    ROUND_STARTED,
)


@dataclass(frozen=True)
class Recovery:
    discarded: list[int]
    unknown_weights: list[int]
    resumable: list[int]
    interrupted: list[int] = field(default_factory=list)  # stopped while scoring; the next round resumes them


class RecoveryMixin:
    # ---- restart ----------------------------------------------------------------------------
    def recover(self) -> "Recovery":
        """Bring an interrupted state back to a consistent one; call once at start-up.

        - A round still `started` died mid-way. With its seed recorded it becomes `interrupted`: the
          next round resumes it (same seed, same documents, the models it had not scored yet).
          Without a seed nothing was done yet worth keeping, and it is `discarded`.
        - A weights intent without an outcome may or may not have reached the chain: it becomes
          `unknown` and that round is never sent again (at most once beats at least once).
        - A round `scored` with no attempt can still have its weights set: it is returned for resumption.
        """
        with self.transaction() as db:
            unfinished = [(int(r[0]), r[1]) for r in db.execute(
                "SELECT id, seed FROM rounds WHERE status = ? ORDER BY id", (ROUND_STARTED,))]
            discarded = [rid for rid, seed in unfinished if seed is None]
            interrupted = [rid for rid, seed in unfinished if seed is not None]
            db.executemany(
                "UPDATE rounds SET status = ?, error = 'interrupted (validator restarted)', finished_at = ?"
                " WHERE id = ?",
                [(ROUND_DISCARDED if rid in discarded else ROUND_INTERRUPTED, time.time(), rid)
                 for rid, _ in unfinished],
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
        return Recovery(discarded=discarded, unknown_weights=unknown, resumable=resumable, interrupted=interrupted)
