"""Window-keyed evidence: which models were scored in which seed window, and each pair's statistic there.

Rows are keyed by (competition, window, model) and (competition, window, pair) and written with
INSERT OR IGNORE inside the round's own transaction, so a window counts once: a second round in
the same window, a resumed round or a restart cannot add it again. Model ids, not hotkeys: a new
commitment is a new model whose evidence starts afresh.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Iterable

from subnet.scoring.windows import WindowStat


@dataclass(frozen=True)
class WindowScore:
    """One model's scoring in one window; `losses` is `DocLosses.to_bytes()` until retention drops it."""

    competition: str
    window: int
    model_id: int
    hotkey: str
    n_docs: int
    n_finite: int
    digest: str | None = None
    losses: bytes | None = None

    @property
    def failed_all(self) -> bool:
        return self.n_finite == 0


@dataclass(frozen=True)
class WindowPair:
    competition: str
    earlier_id: int
    later_id: int
    stat: WindowStat


def _score(r: sqlite3.Row) -> WindowScore:
    return WindowScore(r["competition"], int(r["window_block"]), int(r["model_id"]), r["hotkey"], int(r["n_docs"]),
                       int(r["n_finite"]), r["digest"], None if r["losses"] is None else bytes(r["losses"]))


def _nan_if_none(x):
    return float("nan") if x is None else float(x)


def write_windows(db: sqlite3.Connection, round_id: int, scores: Iterable[WindowScore],
                  pairs: Iterable[WindowPair]) -> None:
    """Inside the caller's transaction; what a window already holds is never replaced."""
    db.executemany(
        "INSERT OR IGNORE INTO window_scores (competition, window_block, model_id, hotkey, n_docs, n_finite, digest,"
        " round_id, losses) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(s.competition, s.window, s.model_id, s.hotkey, s.n_docs, s.n_finite, s.digest, round_id, s.losses)
         for s in scores])
    db.executemany(
        "INSERT OR IGNORE INTO window_pairs (competition, window_block, earlier_id, later_id, log_ratio, variance, n,"
        " earlier_failed, later_failed, round_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(p.competition, p.stat.window, p.earlier_id, p.later_id,
          p.stat.log_ratio if p.stat.log_ratio == p.stat.log_ratio else None,
          p.stat.variance if p.stat.variance == p.stat.variance else None,
          p.stat.n, p.stat.earlier_failed, p.stat.later_failed, round_id) for p in pairs])
    # A hotkey's superseded commitment never competes again: its windows would only be read and ignored.
    current = "SELECT MAX(id) FROM models GROUP BY hotkey"
    db.execute(f"DELETE FROM window_scores WHERE model_id NOT IN ({current})")
    db.execute(f"DELETE FROM window_pairs WHERE earlier_id NOT IN ({current}) OR later_id NOT IN ({current})")


class WindowsMixin:
    def window_scores(self, competition: str, window: int) -> dict[int, WindowScore]:
        """The models already scored in this window, keyed by model id (with their losses if kept)."""
        rows = self._query("SELECT * FROM window_scores WHERE competition = ? AND window_block = ?",
                           (competition, int(window)))
        return {int(r["model_id"]): _score(r) for r in rows}

    def window_model_ids(self, competition: str, window: int) -> set[int]:
        """The ids of the models scored in this window (no losses read: the planner asks this often)."""
        rows = self._query("SELECT model_id FROM window_scores WHERE competition = ? AND window_block = ?",
                           (competition, int(window)))
        return {int(r["model_id"]) for r in rows}

    def scored_windows(self, competition: str) -> dict[int, list[WindowScore]]:
        """Every model's windows (without losses), oldest first, keyed by model id."""
        rows = self._query(
            "SELECT competition, window_block, model_id, hotkey, n_docs, n_finite, digest, NULL AS losses"
            " FROM window_scores WHERE competition = ? ORDER BY window_block", (competition,))
        out: dict[int, list[WindowScore]] = {}
        for r in rows:
            out.setdefault(int(r["model_id"]), []).append(_score(r))
        return out

    def window_pairs(self, competition: str) -> dict[tuple[int, int], list[WindowStat]]:
        """Each pair's statistics, one per window, keyed by (earlier model id, later model id)."""
        rows = self._query(
            "SELECT * FROM window_pairs WHERE competition = ? ORDER BY earlier_id, later_id, window_block",
            (competition,))
        out: dict[tuple[int, int], list[WindowStat]] = {}
        for r in rows:
            stat = WindowStat(int(r["window_block"]), _nan_if_none(r["log_ratio"]), _nan_if_none(r["variance"]),
                              int(r["n"]), int(r["earlier_failed"]), int(r["later_failed"]))
            out.setdefault((int(r["earlier_id"]), int(r["later_id"])), []).append(stat)
        return out

    def windows_scored_since(self, window: int) -> int:
        """How many distinct windows this validator scored from `window` on (catch-up reporting)."""
        rows = self._query("SELECT COUNT(DISTINCT window_block) AS n FROM window_scores WHERE window_block >= ?",
                           (int(window),))
        return int(rows[0]["n"]) if rows else 0

    def forget_window(self, competition: str, window: int) -> None:
        """Drop a window whose documents changed since it was first scored: its rows are not comparable."""
        with self.transaction() as db:
            db.execute("DELETE FROM window_scores WHERE competition = ? AND window_block = ?", (competition, window))
            db.execute("DELETE FROM window_pairs WHERE competition = ? AND window_block = ?", (competition, window))
