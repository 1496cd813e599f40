"""The state under another process's write lock, retention, and a /healthz that means something."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import textwrap
import threading
import time

import aiohttp
import numpy as np
import pytest

from subnet.eval.types import DocLosses
from subnet.validator import state as st
from subnet.validator.api import StatusServer, build_app
from subnet.validator.health import NOTHING_EVALUATED, STALE_EMA, HealthPolicy, assess
from subnet.validator.metrics import ValidatorMetrics
from subnet.validator.state import ResultRow, StateBusy, ValidatorState, VerdictRow


class LockHolder:
    """Another process holding the state's write lock (as `sqlite3 state.sqlite` with BEGIN EXCLUSIVE would)."""

    def __init__(self, path) -> None:
        script = textwrap.dedent(f"""
            import sqlite3, sys
            con = sqlite3.connect({str(path)!r}, isolation_level=None)
            con.execute("BEGIN EXCLUSIVE")
            con.execute("INSERT INTO meta (key, value) VALUES ('intruder', '1')")
            print("locked", flush=True)
            sys.stdin.read()
        """)
        self.proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


def _get(port: int, path: str, n: int = 1) -> list[tuple[int, dict, float]]:
    async def run():
        out = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            for _ in range(n):
                t = time.perf_counter()
                async with http.get(f"http://127.0.0.1:{port}{path}") as r:
                    body = await r.json()
                out.append((r.status, body, time.perf_counter() - t))
        return out

    return asyncio.run(run())


def _round(state: ValidatorState, block: int, *, due: int, evaluated: int, status=st.ROUND_DONE,
           results=()) -> int:
    rid = state.start_round(block, f"0xseed{block}")
    state.complete_scoring(rid, list(results), [], {}, n_due=due, n_evaluated=evaluated)
    state.finish_round(rid, status)
    return rid


def test_healthz_answers_within_100_ms_while_another_process_holds_the_write_lock(tmp_path):
    state = ValidatorState(tmp_path / "state.sqlite", lock_wait_s=30)
    _round(state, 100, due=2, evaluated=2)
    server = StatusServer(build_app(state, ValidatorMetrics(), healthz_max_age_s=3600), "127.0.0.1", 0)
    port = server.start()
    holder = LockHolder(state.path)
    # The daemon's own connection is now stuck waiting for the lock (as a round's write would be).
    writer = threading.Thread(target=state.set_meta, args=("blocked", 1), daemon=True)
    writer.start()
    try:
        time.sleep(0.3)
        assert writer.is_alive()
        answers = _get(port, "/healthz", n=5)
        assert all(status == 200 and body["ok"] for status, body, _ in answers), answers
        assert statistics.median(t for _, _, t in answers) < 0.1, answers
        assert max(t for _, _, t in answers) < 0.5, answers
        [(status, body, _)] = _get(port, "/scores")
        assert status == 200 and "scores" in body
    finally:
        holder.release()
        writer.join(30)
        server.stop()
        state.close()
    assert not writer.is_alive()


def test_a_write_waits_for_another_process_a_bounded_time_then_raises_state_busy(tmp_path):
    state = ValidatorState(tmp_path / "state.sqlite", lock_wait_s=1.5, busy_timeout_ms=200)
    waits = []
    state.on_lock_wait = waits.append
    holder = LockHolder(state.path)
    try:
        started = time.monotonic()
        with pytest.raises(StateBusy, match="write-locked"):
            state.set_meta("k", 1)
        assert 1.5 <= time.monotonic() - started < 6
        assert len(waits) >= 2  # retried in steps, each one counted
    finally:
        holder.release()
    state.set_meta("k", 2)  # the lock is gone: writes go through again
    assert state.get_meta("k") == 2 and state.get_meta("intruder") is None
    state.close()


def test_reader_never_writes(tmp_path):
    state = ValidatorState(tmp_path / "state.sqlite")
    reader = state.reader()
    with pytest.raises(st.StateError, match="read-only"):
        reader.set_meta("k", 1)
    state.set_meta("k", 3)
    assert reader.get_meta("k") == 3
    reader.close()
    state.close()


def _losses(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return DocLosses(rng.random(n) * 100, np.full(n, 40), np.full(n, 160), np.zeros(n, np.int8)).to_bytes()


def test_retention_keeps_recent_losses_longer_summaries_and_every_models_newest_result(tmp_path):
    state = ValidatorState(tmp_path / "state.sqlite")
    models = {hk: state.upsert_commitment(hk, i, f"ref-{hk}", 10 + i, "tiny").id for i, hk in enumerate("abc")}
    rids = []
    for i in range(12):
        hotkeys = "ab" if i < 11 else "a"  # 'b' last scored in round 11 of 12, 'c' never after round 1
        hotkeys = "abc" if i == 0 else hotkeys
        rows = [ResultRow("tiny", hk, 0, models[hk], 2.0, losses=_losses(200, i)) for hk in hotkeys]
        rid = state.start_round(100 + i, "0xs")
        state.complete_scoring(rid, rows, [VerdictRow("tiny", "a", "b", 0.0, 0.1, 0.0, 0.2, False)], {},
                               n_due=len(rows), n_evaluated=len(rows))
        state.finish_round(rid, st.ROUND_DONE)
        rids.append(rid)
        state.prune(keep_loss_rounds=3, keep_summary_rounds=5)
    with_losses = [rid for rid in rids if any(r.losses for r in state.results(rid))]
    assert with_losses == rids[-3:]
    assert [r.id for r in state.rounds(100) if r.id in rids[-5:]] == sorted(rids[-5:], reverse=True)
    assert all(state.verdicts(rid) == [] for rid in rids[:-5]) and state.verdicts(rids[-1])
    # Old rounds went, except where a model's newest result lives (/scores shows it however old).
    latest = state.latest_results("tiny")
    assert latest[("tiny", "c")][0] == rids[0] and latest[("tiny", "b")][0] == rids[-2]
    assert {r.id for r in state.rounds(100)} == set(rids[-5:]) | {rids[0]}
    state.close()


def test_health_fails_when_rounds_evaluate_nothing_that_was_due_and_names_the_reason(tmp_path):
    state = ValidatorState(tmp_path / "state.sqlite")
    metrics = ValidatorMetrics()
    server = StatusServer(build_app(state, metrics, healthz_max_age_s=3600, healthz_idle_rounds=2),
                          "127.0.0.1", 0)
    port = server.start()
    try:
        _round(state, 100, due=3, evaluated=3, status=st.ROUND_WEIGHTS_SET)
        _round(state, 110, due=0, evaluated=0)  # nothing due: not a fault
        _round(state, 120, due=3, evaluated=0)
        [(status, body, _)] = _get(port, "/healthz")
        assert status == 200 and body["rounds_without_evaluation"] == 1
        _round(state, 130, due=3, evaluated=0, status=st.ROUND_WEIGHTS_SET)  # and weights from the frozen EMA
        [(status, body, _)] = _get(port, "/healthz")
        assert status == 503 and set(body["reasons"]) == {NOTHING_EVALUATED, STALE_EMA}
        text = metrics.render().decode()
        assert 'validator_health_failing{reason="nothing_evaluated"} 1.0' in text
        assert 'validator_health_failures_total{reason="stale_ema"}' in text
        _round(state, 140, due=3, evaluated=2)  # evaluating again; the last weights are still stale
        [(status, body, _)] = _get(port, "/healthz")
        assert status == 503 and body["reasons"] == [STALE_EMA]
        _round(state, 150, due=3, evaluated=2, status=st.ROUND_WEIGHTS_SET)
        [(status, body, _)] = _get(port, "/healthz")
        assert status == 200 and body["reasons"] == []
        assert 'validator_health_failing{reason="nothing_evaluated"} 0.0' in metrics.render().decode()
    finally:
        server.stop()
        state.close()


def test_weights_from_an_ema_older_than_the_age_limit_are_stale():
    now = 10_000.0
    rounds = [
        st.RoundRecord(3, 30, "s", st.ROUND_WEIGHTS_SET, None, now - 10, now - 5, n_due=2, n_evaluated=0),
        st.RoundRecord(2, 20, "s", st.ROUND_DONE, None, now - 5000, now - 4990, n_due=0, n_evaluated=0),
        st.RoundRecord(1, 10, "s", st.ROUND_DONE, None, now - 9000, now - 8000, n_due=2, n_evaluated=2),
    ]
    health = assess(rounds, HealthPolicy(max_age_s=3600, idle_rounds=2), now, started_at=0)
    assert not health.ok and health.reasons == [STALE_EMA]
    assert assess(rounds, HealthPolicy(max_age_s=9000, idle_rounds=2), now, started_at=0).ok


def test_latest_results_seek_each_models_newest_row_across_competitions(tmp_path):
    state = ValidatorState(tmp_path / "state.sqlite")
    newest = {}
    for i in range(6):
        rid = state.start_round(10 * i, "0xs")
        rows = [ResultRow(c, hk, 0, None, float(i), losses=_losses(5, i))
                for c, hk in (("b3", "x"), ("b3", "y"), ("tiny", "a"), ("tiny", "x")) if (i + len(hk + c)) % 3]
        state.complete_scoring(rid, rows, [], {})
        newest.update({(r.competition, r.hotkey): (rid, float(i)) for r in rows})
    reader = state.reader()
    got = reader.latest_results()
    assert {k: (rid, row.mean_loss) for k, (rid, row) in got.items()} == newest
    assert all(row.losses is None for _, row in got.values())  # /scores never reads the loss blobs
    assert set(reader.latest_results("tiny")) == {k for k in newest if k[0] == "tiny"}
    reader.close()
    state.close()
