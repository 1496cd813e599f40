"""The current decision's view of each pair (pooled evidence, verdict) and the advantages models hold.

Keyed by model id (one commitment), not hotkey: a miner who commits a new model gets a new id, so
the pair's evidence starts afresh and an earned advantage does not carry over to a different
model. Both are written in the same transaction as the round's results (`complete_scoring`), so
a round's evidence is counted exactly once, and read back after any restart.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Iterable

from subnet.validator.state.records import _finite_or_none


@dataclass(frozen=True)
class EvidenceRecord:
    """A pair's accumulated evidence (see `subnet.scoring.sequential.PairEvidence`) and latest verdict."""

    competition: str
    earlier_id: int
    later_id: int
    earlier: str  # hotkeys, for display
    later: str
    weighted_sum: float
    information: float
    rounds: int
    eps: float | None = None
    acc_low: float | None = None  # confidence sequence of L_later / L_earlier - 1
    acc_high: float | None = None
    later_wins: bool = False
    round_id: int | None = None
    rho: float = 0.0  # the mixture's precision, fixed at the pair's first round


@dataclass(frozen=True)
class EarnedRecord:
    """The advantage a model earned (issue 20) and the verdict that earned it."""

    competition: str
    model_id: int
    hotkey: str
    eps: float
    leader: str
    leader_id: int | None
    improvement_low: float
    improvement_high: float
    rounds: int
    by_failures: bool
    round_id: int | None = None


def _evidence(r: sqlite3.Row) -> EvidenceRecord:
    return EvidenceRecord(
        r["competition"], int(r["earlier_id"]), int(r["later_id"]), r["earlier"], r["later"],
        float(r["weighted_sum"]), float(r["information"]), int(r["rounds"]), r["eps"], r["acc_low"], r["acc_high"],
        bool(r["later_wins"]), r["round_id"], float(r["rho"] or 0.0),
    )


def _earned(r: sqlite3.Row) -> EarnedRecord:
    return EarnedRecord(
        r["competition"], int(r["model_id"]), r["hotkey"], float(r["eps"]), r["leader"], r["leader_id"],
        float(r["improvement_low"]), float(r["improvement_high"]), int(r["rounds"]), bool(r["by_failures"]),
        r["round_id"],
    )


def write_evidence(db: sqlite3.Connection, round_id: int, evidence: Iterable[EvidenceRecord],
                   earned: Iterable[EarnedRecord], decided: Iterable[str] = ()) -> None:
    """Inside the caller's transaction: the `decided` competitions' pairs and earned advantages are
    replaced by this round's decision (derived from the windows, so nothing is lost by replacing)."""
    for competition in sorted(set(decided)):
        db.execute("DELETE FROM pair_evidence WHERE competition = ?", (competition,))
        db.execute("DELETE FROM earned_advantage WHERE competition = ?", (competition,))
    db.executemany(
        "INSERT OR REPLACE INTO pair_evidence (competition, earlier_id, later_id, earlier, later, weighted_sum,"
        " information, rounds, eps, acc_low, acc_high, later_wins, round_id, rho)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(e.competition, e.earlier_id, e.later_id, e.earlier, e.later, float(e.weighted_sum),
          float(e.information), int(e.rounds), _finite_or_none(e.eps), _finite_or_none(e.acc_low),
          _finite_or_none(e.acc_high), int(bool(e.later_wins)), round_id, float(e.rho)) for e in evidence],
    )
    db.executemany(
        "INSERT OR REPLACE INTO earned_advantage (competition, model_id, hotkey, eps, leader, leader_id,"
        " improvement_low, improvement_high, rounds, by_failures, round_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(e.competition, e.model_id, e.hotkey, float(e.eps), e.leader, e.leader_id, float(e.improvement_low),
          float(e.improvement_high), int(e.rounds), int(bool(e.by_failures)), round_id) for e in earned],
    )
    # A hotkey's superseded commitment no longer competes: its pairs can never be added to again.
    db.execute(
        "DELETE FROM pair_evidence WHERE earlier_id NOT IN (SELECT MAX(id) FROM models GROUP BY hotkey)"
        " OR later_id NOT IN (SELECT MAX(id) FROM models GROUP BY hotkey)"
    )


class EvidenceMixin:
    def pair_evidence(self, competition: str | None = None) -> dict[tuple[int, int], EvidenceRecord]:
        """Every stored pair's evidence, keyed by (earlier model id, later model id)."""
        if competition is None:
            rows = self._query("SELECT * FROM pair_evidence ORDER BY competition, earlier_id, later_id")
        else:
            rows = self._query("SELECT * FROM pair_evidence WHERE competition = ? ORDER BY earlier_id, later_id",
                               (competition,))
        return {(int(r["earlier_id"]), int(r["later_id"])): _evidence(r) for r in rows}

    def earned_advantages(self, competition: str | None = None) -> dict[int, EarnedRecord]:
        """What each model earned, keyed by model id."""
        if competition is None:
            rows = self._query("SELECT * FROM earned_advantage ORDER BY model_id")
        else:
            rows = self._query("SELECT * FROM earned_advantage WHERE competition = ? ORDER BY model_id",
                               (competition,))
        return {int(r["model_id"]): _earned(r) for r in rows}
