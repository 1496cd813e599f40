"""Retention: the database stays bounded over months of rounds.

Per-document losses are the bulk (16 models x 2,400 documents is about 650 KB a round): they are
kept for the newest `keep_loss_rounds` completed rounds. Summaries (results without losses,
verdicts, round data, weight attempts, the rounds themselves) are kept for `keep_summary_rounds`,
except each model's newest result and the newest successful weights, which `/scores` and the
weights cadence read however old they are. Freed pages are reused by later rounds, so the file
stops growing once retention is reached.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from subnet.validator.state.records import (
    ATTEMPT_SUCCESS,
    ROUND_DONE,
    ROUND_SCORED,
    ROUND_WEIGHTS_SET,
)

log = logging.getLogger(__name__)

_COMPLETED = (ROUND_SCORED, ROUND_WEIGHTS_SET, ROUND_DONE)


@dataclass(frozen=True)
class Pruned:
    losses: int = 0  # result rows whose losses were dropped
    results: int = 0
    rounds: int = 0


class RetentionMixin:
    def prune(self, keep_loss_rounds: int, keep_summary_rounds: int) -> Pruned:
        """Drop what is older than the retention windows (counted in completed rounds; <= 0 keeps all)."""
        loss_cut = self._cutoff(keep_loss_rounds)
        summary_cut = self._cutoff(max(keep_summary_rounds, keep_loss_rounds) if keep_summary_rounds > 0 else 0)
        losses = results = rounds = 0
        if loss_cut is not None:
            with self.transaction() as db:
                losses = db.execute("UPDATE results SET losses = NULL WHERE round_id < ? AND losses IS NOT NULL",
                                    (loss_cut,)).rowcount
                db.execute("UPDATE window_scores SET losses = NULL WHERE round_id < ? AND losses IS NOT NULL",
                           (loss_cut,))
        if summary_cut is not None:
            with self.transaction() as db:
                results = db.execute(
                    "DELETE FROM results WHERE round_id < ? AND EXISTS (SELECT 1 FROM results n"
                    " WHERE n.competition = results.competition AND n.hotkey = results.hotkey"
                    " AND n.round_id > results.round_id)", (summary_cut,)).rowcount
                db.execute("DELETE FROM verdicts WHERE round_id < ?", (summary_cut,))
                db.execute("DELETE FROM round_data WHERE round_id < ?", (summary_cut,))
                db.execute(
                    "DELETE FROM weight_attempts WHERE round_id < ? AND id NOT IN"
                    " (SELECT MAX(id) FROM weight_attempts WHERE status = ?)", (summary_cut, ATTEMPT_SUCCESS))
                db.execute("DELETE FROM round_progress WHERE round_id < ?", (summary_cut,))
            try:
                with self.transaction() as db:
                    rounds = db.execute(
                        "DELETE FROM rounds WHERE id < ? AND id NOT IN (SELECT round_id FROM results)"
                        " AND id NOT IN (SELECT round_id FROM weight_attempts)", (summary_cut,)).rowcount
            except sqlite3.IntegrityError as e:  # another table still refers to them: keep the (small) rows
                log.debug("old rounds kept: %s", e)
        return Pruned(losses, results, rounds)

    def _cutoff(self, keep: int) -> int | None:
        """The id of the oldest completed round to keep whole, or None when nothing is old enough."""
        if keep <= 0:
            return None
        rows = self._query(
            f"SELECT id FROM rounds WHERE status IN ({', '.join('?' * len(_COMPLETED))})"
            " ORDER BY id DESC LIMIT 1 OFFSET ?", (*_COMPLETED, keep - 1))
        return int(rows[0]["id"]) if rows else None
