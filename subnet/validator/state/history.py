"""Reads across rounds for the leaderboard: each model's result over time, without the loss blobs."""

from __future__ import annotations


class HistoryMixin:
    def result_history(self, competition: str | None = None, last_rounds: int = 200) -> list[tuple]:
        """(round_id, competition, hotkey, uid, model_id, mean_loss, ci_low, ci_high, copy_of) rows of
        the newest `last_rounds` rounds that have results, oldest first; no per-document losses.

        Plain tuples and a range scan on the results' primary key: 256 models x 200 rounds in tens of ms.
        """
        rounds = self._query(
            "SELECT DISTINCT round_id FROM results ORDER BY round_id DESC LIMIT ?", (max(1, int(last_rounds)),)
        )
        if not rounds:
            return []
        sql = (
            "SELECT round_id, competition, hotkey, uid, model_id, mean_loss, ci_low, ci_high, copy_of"
            " FROM results WHERE round_id >= ?"
        )
        params: list = [min(int(r[0]) for r in rounds)]
        if competition is not None:
            sql += " AND competition = ?"
            params.append(competition)
        return self._query_tuples(sql + " ORDER BY round_id", params)

    def newest_result_round(self) -> int | None:
        rows = self._query("SELECT MAX(round_id) AS rid FROM results")
        return int(rows[0]["rid"]) if rows and rows[0]["rid"] is not None else None

    def round_blocks(self, round_ids) -> dict[int, int]:
        ids = sorted({int(i) for i in round_ids})
        if not ids:
            return {}
        rows = self._query("SELECT id, block FROM rounds WHERE id BETWEEN ? AND ?", (ids[0], ids[-1]))
        wanted = set(ids)
        return {int(r["id"]): int(r["block"]) for r in rows if int(r["id"]) in wanted}

    def model_refs(self, model_ids) -> dict[int, str]:
        ids = sorted({int(i) for i in model_ids if i is not None})
        out: dict[int, str] = {}
        for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
            chunk = ids[start:start + 500]
            rows = self._query(f"SELECT id, ref FROM models WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            out.update({int(r["id"]): r["ref"] for r in rows})
        return out

    def latest_result_round(self, competition: str, hotkey: str) -> int | None:
        rows = self._query("SELECT MAX(round_id) AS rid FROM results WHERE competition = ? AND hotkey = ?",
                           (competition, hotkey))
        return int(rows[0]["rid"]) if rows and rows[0]["rid"] is not None else None

    def result_losses(self, round_id: int, competition: str) -> dict[str, bytes]:
        """{hotkey: DocLosses blob} of one round and competition, for paired comparisons after the fact."""
        rows = self._query(
            "SELECT hotkey, losses FROM results WHERE round_id = ? AND competition = ? AND losses IS NOT NULL",
            (int(round_id), competition),
        )
        return {r["hotkey"]: bytes(r["losses"]) for r in rows}

    def round_failures(self, round_id: int) -> list[dict]:
        """The models of a round that produced no usable result, with their reason."""
        rows = self._query(
            "SELECT competition, hotkey, error FROM results WHERE round_id = ? AND error IS NOT NULL AND error != ''"
            " ORDER BY competition, hotkey",
            (int(round_id),),
        )
        return [{"competition": r["competition"], "hotkey": r["hotkey"], "reason": r["error"]} for r in rows]
