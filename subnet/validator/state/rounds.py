"""Rounds, their data, results, verdicts and the EMA they produce."""

from __future__ import annotations

import json
import time
from typing import Iterable, Mapping, Sequence

from subnet.validator.state.records import (
    ROUND_DISCARDED,
    ROUND_DONE,
    ROUND_INTERRUPTED,
    ROUND_SCORED,
    ROUND_STARTED,
    ROUND_WEIGHTS_SET,
    ResultRow,
    RoundRecord,
    ScoredModel,
    StateError,
    VerdictRow,
    _finite_or_none,
    _result,
    _round,
)
from subnet.validator.state.evidence import EarnedRecord, EvidenceRecord, write_evidence
from subnet.validator.state.windows import WindowPair, WindowScore, write_windows

# The results columns `/scores` reads: everything but the per-document losses (the bulk of the table).
_SUMMARY_COLUMNS = ("round_id, competition, hotkey, uid, model_id, mean_loss, ci_low, ci_high, n_docs, tokens_per_s,"
                    " seconds, error, win_rate, wins, copy_of")
from subnet.validator.state.registrations import _record_registrations


class RoundsMixin:
    # ---- rounds -----------------------------------------------------------------------------
    def start_round(self, block: int, seed: str | None = None, window: int | None = None) -> int:
        """`window`: the seed block whose documents the round scores (None: not recorded)."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO rounds (block, seed, status, started_at, window_block) VALUES (?, ?, ?, ?, ?)",
                (block, seed, ROUND_STARTED, time.time(), window),
            )
            return int(cur.lastrowid)

    # ---- resumable rounds ---------------------------------------------------------------------
    def record_plan(self, round_id: int, plan: Mapping[str, Sequence[tuple[str, int | None]]]) -> None:
        """The models a round will evaluate, per competition: a resumed round evaluates the same ones."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO round_progress (round_id, competition, hotkey, model_id) VALUES (?, ?, ?, ?)",
                [(round_id, cid, hotkey, model_id) for cid, keys in plan.items() for hotkey, model_id in keys],
            )

    def planned_models(self, round_id: int) -> dict[str, list[tuple[str, int | None]]]:
        out: dict[str, list[tuple[str, int | None]]] = {}
        for r in self._query("SELECT competition, hotkey, model_id FROM round_progress WHERE round_id = ?"
                             " ORDER BY competition, hotkey", (round_id,)):
            out.setdefault(r["competition"], []).append((r["hotkey"], r["model_id"]))
        return out

    def record_scored(self, round_id: int, scored: ScoredModel) -> None:
        """One model's losses (or why it has none), kept the moment they are known."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO round_progress (round_id, competition, hotkey, model_id, scored_at, error, detail,"
                " seconds, tokens_per_s, losses) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(round_id, competition, hotkey) DO UPDATE SET model_id = excluded.model_id,"
                " scored_at = excluded.scored_at, error = excluded.error, detail = excluded.detail,"
                " seconds = excluded.seconds, tokens_per_s = excluded.tokens_per_s, losses = excluded.losses",
                (round_id, scored.competition, scored.hotkey, scored.model_id, time.time(), scored.error,
                 scored.detail[:2000], scored.seconds, scored.tokens_per_s, scored.losses),
            )

    def scored_models(self, round_id: int, competition: str) -> dict[str, ScoredModel]:
        rows = self._query(
            "SELECT * FROM round_progress WHERE round_id = ? AND competition = ? AND scored_at IS NOT NULL",
            (round_id, competition))
        return {
            r["hotkey"]: ScoredModel(r["competition"], r["hotkey"], r["model_id"], r["error"] or "", r["detail"] or "",
                                     r["seconds"] or 0.0, r["tokens_per_s"] or 0.0, r["losses"])
            for r in rows
        }

    def unfinished_round(self) -> RoundRecord | None:
        """The newest round, when it stopped part-way (interrupted, or left `started` by a failed write)."""
        rows = self._query("SELECT * FROM rounds ORDER BY id DESC LIMIT 1")
        if rows and rows[0]["status"] in (ROUND_STARTED, ROUND_INTERRUPTED):
            return _round(rows[0])
        return None

    def resume_round(self, round_id: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE rounds SET status = ?, error = NULL, finished_at = NULL WHERE id = ?",
                       (ROUND_STARTED, round_id))

    def discard_unfinished(self, reason: str) -> list[int]:
        """Rounds that stopped part-way and will not be resumed: their partial scores go."""
        with self.transaction() as db:
            ids = [int(r[0]) for r in db.execute("SELECT id FROM rounds WHERE status IN (?, ?)",
                                                 (ROUND_STARTED, ROUND_INTERRUPTED))]
            db.executemany("UPDATE rounds SET status = ?, error = ?, finished_at = ? WHERE id = ?",
                           [(ROUND_DISCARDED, reason, time.time(), i) for i in ids])
            db.executemany("DELETE FROM round_progress WHERE round_id = ?", [(i,) for i in ids])
        return ids

    def record_round_data(
        self,
        round_id: int,
        competition: str,
        seed: str,
        page_ids: Sequence[str],
        digest: str,
        n_docs: int,
        failed_pages: Sequence[str] = (),
        identity: Mapping | None = None,
        error: str | None = None,
    ) -> None:
        """`identity` is RoundData.identity(); `error` says why the data was refused (the round is not judged)."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO round_data (round_id, competition, seed, page_ids, failed_pages, digest,"
                " n_docs, identity, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (round_id, competition, seed, json.dumps(list(page_ids)), json.dumps(list(failed_pages)),
                 digest, n_docs, None if identity is None else json.dumps(dict(identity)), error),
            )
            db.execute("UPDATE rounds SET seed = COALESCE(seed, ?) WHERE id = ?", (seed, round_id))

    def complete_scoring(
        self,
        round_id: int,
        results: Iterable[ResultRow],
        verdicts: Iterable[VerdictRow],
        ema: Mapping[str, Mapping[str, float]],
        evaluated_model_ids: Iterable[int] = (),
        registered: Mapping[str, int] | None = None,
        evidence: Iterable[EvidenceRecord] = (),
        earned: Iterable[EarnedRecord] = (),
        *,
        n_due: int | None = None,
        n_evaluated: int | None = None,
        window_scores: Iterable[WindowScore] = (),
        window_pairs: Iterable[WindowPair] = (),
        decided: Iterable[str] = (),
    ) -> None:
        """Results, verdicts and the new EMA land together, or not at all (the EMA is applied once).

        So do the window's scores and pair statistics (`window_*`, kept once per window) and, for the
        `decided` competitions, the decision's pooled `evidence` and `earned` advantages (replaced
        whole: they are recomputed from the windows every round).

        `registered` (hotkey -> uid of the round's metagraph) is recorded in the same transaction, so
        the registrations the next round compares against are exactly those this EMA was built on.
        """
        with self.transaction() as db:
            status = db.execute("SELECT status, block FROM rounds WHERE id = ?", (round_id,)).fetchone()
            if status is None or status["status"] != ROUND_STARTED:
                raise StateError(f"round {round_id} is not in progress (status {status and status['status']})")
            if registered is not None:
                _record_registrations(db, round_id, int(status["block"]), registered)
            db.executemany(
                "INSERT OR REPLACE INTO results (round_id, competition, hotkey, uid, model_id, mean_loss, ci_low,"
                " ci_high, n_docs, tokens_per_s, seconds, error, win_rate, wins, copy_of, losses)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (round_id, r.competition, r.hotkey, r.uid, r.model_id, _finite_or_none(r.mean_loss),
                     _finite_or_none(r.ci_low), _finite_or_none(r.ci_high), r.n_docs, r.tokens_per_s, r.seconds,
                     r.error, _finite_or_none(r.win_rate), r.wins, r.copy_of, r.losses)
                    for r in results
                ],
            )
            db.executemany(
                "INSERT OR REPLACE INTO verdicts (round_id, competition, earlier, later, eps, diff, ci_low,"
                " ci_high, later_wins) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (round_id, v.competition, v.earlier, v.later, _finite_or_none(v.eps),
                     _finite_or_none(v.diff), _finite_or_none(v.ci_low), _finite_or_none(v.ci_high),
                     int(bool(v.later_wins)))
                    for v in verdicts
                ],
            )
            for competition, weights in ema.items():
                db.execute("DELETE FROM ema WHERE competition = ?", (competition,))
                db.executemany(
                    "INSERT INTO ema (competition, hotkey, weight, round_id) VALUES (?, ?, ?, ?)",
                    [(competition, hk, float(w), round_id) for hk, w in weights.items()],
                )
            write_windows(db, round_id, window_scores, window_pairs)
            write_evidence(db, round_id, evidence, earned, decided)
            ids = list(evaluated_model_ids)
            db.executemany("UPDATE models SET last_round = ? WHERE id = ?", [(round_id, i) for i in ids])
            db.execute("UPDATE rounds SET status = ?, n_due = ?, n_evaluated = ? WHERE id = ?",
                       (ROUND_SCORED, n_due, n_evaluated, round_id))
            db.execute("DELETE FROM round_progress WHERE round_id = ?", (round_id,))  # now in results

    def finish_round(self, round_id: int, status: str, error: str | None = None) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE rounds SET status = ?, error = COALESCE(?, error), finished_at = ? WHERE id = ?",
                (status, error, time.time(), round_id),
            )

    def round(self, round_id: int) -> RoundRecord | None:
        rows = self._query("SELECT * FROM rounds WHERE id = ?", (round_id,))
        return _round(rows[0]) if rows else None

    def rounds(self, limit: int = 50) -> list[RoundRecord]:
        rows = self._query("SELECT * FROM rounds ORDER BY id DESC LIMIT ?", (limit,))
        return [_round(r) for r in rows]

    def round_data(self, round_id: int) -> list[dict]:
        rows = self._query("SELECT * FROM round_data WHERE round_id = ? ORDER BY competition", (round_id,))
        out = []
        for r in rows:
            identity = json.loads(r["identity"]) if r["identity"] else None
            failed = json.loads(r["failed_pages"] or "[]")
            # Comparable with another validator's round only if no page failed or was replaced and one
            # dataset revision served it all; then equal identity digests mean equal page choices.
            comparable = (identity is not None and not failed and not identity.get("replaced_pages")
                          and not identity.get("mixed_revisions"))
            out.append({**dict(r), "page_ids": json.loads(r["page_ids"] or "[]"), "failed_pages": failed,
                        "identity": identity, "comparable": comparable})
        return out

    def last_completed_round(self) -> RoundRecord | None:
        rows = self._query(
            "SELECT * FROM rounds WHERE status IN (?, ?, ?) ORDER BY id DESC LIMIT 1",
            (ROUND_SCORED, ROUND_WEIGHTS_SET, ROUND_DONE),
        )
        return _round(rows[0]) if rows else None

    def results(self, round_id: int) -> list[ResultRow]:
        rows = self._query("SELECT * FROM results WHERE round_id = ? ORDER BY competition, hotkey", (round_id,))
        return [_result(r) for r in rows]

    def latest_results(self, competition: str | None = None) -> dict[tuple[str, str], tuple[int, ResultRow]]:
        """The newest result of every (competition, hotkey): {(competition, hotkey): (round_id, row)}.

        Without the per-document losses (`results(round_id)` has them): this serves `/scores`. One
        index seek per key rather than a scan of every round's rows, so it costs the same after a
        month of rounds as after one.
        """
        out = {}
        for c, h in self._result_keys(competition):
            rows = self._query(f"SELECT {_SUMMARY_COLUMNS} FROM results WHERE competition = ? AND hotkey = ?"
                               " ORDER BY round_id DESC LIMIT 1", (c, h))
            if rows:
                out[(c, h)] = (int(rows[0]["round_id"]), _result(rows[0]))
        return out

    def _result_keys(self, competition: str | None) -> list[tuple[str, str]]:
        """Every (competition, hotkey) with a result, by skipping along the (competition, hotkey, round_id) index."""
        if competition is None:
            row = self._query_tuples("SELECT competition, hotkey FROM results ORDER BY competition, hotkey LIMIT 1")
        else:
            row = self._query_tuples("SELECT competition, hotkey FROM results WHERE competition = ?"
                                     " ORDER BY hotkey LIMIT 1", (competition,))
        keys = []
        while row:
            c, h = row[0]
            keys.append((c, h))
            row = self._query_tuples("SELECT competition, hotkey FROM results WHERE competition = ? AND hotkey > ?"
                                     " ORDER BY hotkey LIMIT 1", (c, h))
            if not row and competition is None:
                row = self._query_tuples("SELECT competition, hotkey FROM results WHERE competition > ?"
                                         " ORDER BY competition, hotkey LIMIT 1", (c,))
        return keys

    def verdicts(self, round_id: int) -> list[VerdictRow]:
        rows = self._query("SELECT * FROM verdicts WHERE round_id = ? ORDER BY competition, earlier, later",
                           (round_id,))
        return [
            VerdictRow(r["competition"], r["earlier"], r["later"], r["eps"], r["diff"], r["ci_low"], r["ci_high"],
                       bool(r["later_wins"]))
            for r in rows
        ]

    # ---- EMA ----------------------------------------------------------------------------------
    def ema(self, competition: str) -> dict[str, float]:
        rows = self._query("SELECT hotkey, weight FROM ema WHERE competition = ? ORDER BY hotkey", (competition,))
        return {r["hotkey"]: float(r["weight"]) for r in rows}

    def all_ema(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for r in self._query("SELECT competition, hotkey, weight FROM ema ORDER BY competition, hotkey"):
            out.setdefault(r["competition"], {})[r["hotkey"]] = float(r["weight"])
        return out
