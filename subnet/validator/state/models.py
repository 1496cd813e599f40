"""Model records: one per commitment sighting, with its status, reason and cached directory."""

from __future__ import annotations

import time

from subnet.validator.state.records import (
    MODEL_FAILED,
    MODEL_INVALID,
    MODEL_PENDING,
    MODEL_RETRY,
    MODEL_VERIFIED,
    ModelRecord,
    _model,
)

# A model failing transiently (our store, disk or a bug in our checks) is retried at once this many
# times, then parked: put off for PARK_BASE_S, doubling with each further failure up to PARK_MAX_S.
RETRIES_BEFORE_PARKING = 3
PARK_BASE_S = 600.0
PARK_MAX_S = 24 * 3600.0


def park_seconds(transient_failures: int) -> float:
    """How long a model is put off after its `transient_failures`-th consecutive transient failure."""
    if transient_failures < RETRIES_BEFORE_PARKING:
        return 0.0
    return min(PARK_MAX_S, PARK_BASE_S * 2.0 ** min(transient_failures - RETRIES_BEFORE_PARKING, 32))


class ModelsMixin:
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
        """Success: not an attempt that counts towards failing, and it ends any run of failures."""
        with self.transaction() as db:
            db.execute(
                "UPDATE models SET status = ?, reason = NULL, detail = NULL, model_dir = ?, content_hash = ?,"
                " attempts = 0, transient_failures = 0, retry_after = NULL, updated_at = ? WHERE id = ?",
                (MODEL_VERIFIED, model_dir, content_hash, time.time(), model_id),
            )

    def mark_failed(self, model_id: int, reason: str, detail: str = "", *, transient: bool = False) -> None:
        """A permanent failure sticks to this commitment; a transient one is retried, then parked."""
        now = time.time()
        with self.transaction() as db:
            if not transient:
                db.execute(
                    "UPDATE models SET status = ?, reason = ?, detail = ?, attempts = attempts + 1,"
                    " retry_after = NULL, updated_at = ? WHERE id = ?",
                    (MODEL_FAILED, reason, detail[:2000], now, model_id),
                )
                return
            row = db.execute("SELECT transient_failures FROM models WHERE id = ?", (model_id,)).fetchone()
            failures = (int(row[0] or 0) if row else 0) + 1
            wait = park_seconds(failures)
            db.execute(
                "UPDATE models SET status = ?, reason = ?, detail = ?, attempts = attempts + 1,"
                " transient_failures = ?, retry_after = ?, updated_at = ? WHERE id = ?",
                (MODEL_RETRY, reason, detail[:2000], failures, now + wait if wait else None, now, model_id),
            )

    def unpark(self, model_ids) -> None:
        """The resource a model was parked for is back: schedulable now (its failure count stays)."""
        ids = [int(i) for i in model_ids]
        if not ids:
            return
        with self.transaction() as db:
            db.executemany("UPDATE models SET retry_after = NULL WHERE id = ? AND status = ?",
                           [(i, MODEL_RETRY) for i in ids])

    def forget_model_dir(self, model_id: int) -> None:
        """The files were deleted (disk clean-up): a verified model must be fetched again if needed."""
        with self.transaction() as db:
            db.execute(
                "UPDATE models SET model_dir = NULL, status = CASE WHEN status = ? THEN ? ELSE status END,"
                " updated_at = ? WHERE id = ?",
                (MODEL_VERIFIED, MODEL_PENDING, time.time(), model_id),
            )
