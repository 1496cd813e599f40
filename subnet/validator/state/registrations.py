"""Registration stints: which hotkey held which uid, from which round to which."""

from __future__ import annotations

import json
import sqlite3
from typing import Mapping

from subnet.validator.state.records import (
    _REGISTRATIONS_ROUND,
    Registration,
    _registration,
)


class RegistrationsMixin:
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
