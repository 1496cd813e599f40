"""The validator's SQLite state: migrations, atomic scoring, and what a restart does."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from subnet.eval.types import DocLosses
from subnet.validator import state as st
from subnet.validator.state import ResultRow, StateError, ValidatorState, VerdictRow


@pytest.fixture
def state(tmp_path):
    s = ValidatorState(tmp_path / "state.sqlite")
    yield s
    s.close()


def test_fresh_database_runs_every_migration_and_uses_wal(tmp_path):
    s = ValidatorState(tmp_path / "s.sqlite")
    assert s.schema_version == st.SCHEMA_VERSION == len(st.MIGRATIONS)
    mode = s._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode.lower() == "wal"
    s.close()


def test_migrations_resume_from_an_older_version(tmp_path):
    path = tmp_path / "s.sqlite"
    db = sqlite3.connect(path)
    st.MIGRATIONS[0](db)
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO ema (competition, hotkey, weight) VALUES ('tiny', 'hk', 1.0)")
    db.commit()
    db.close()
    s = ValidatorState(path)
    assert s.schema_version == st.SCHEMA_VERSION
    assert s.ema("tiny") == {"hk": 1.0}  # data kept across the migration
    s.set_meta("k", {"a": 1})  # table from migration 2 exists
    assert s.get_meta("k") == {"a": 1}
    s.close()


def test_newer_schema_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "s.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {st.SCHEMA_VERSION + 5}")
    db.close()
    with pytest.raises(StateError, match="newer"):
        ValidatorState(path)


def test_commitment_upsert_is_idempotent_and_failures_stick(state):
    a = state.upsert_commitment("hk1", 3, "ns:m:abc1234:h:tiny", 10, "tiny")
    b = state.upsert_commitment("hk1", 4, "ns:m:abc1234:h:tiny", 10, "tiny")
    assert a.id == b.id and b.uid == 4 and b.status == st.MODEL_PENDING
    state.mark_failed(a.id, "unsafe_file", "model.bin is a pickle")
    again = state.upsert_commitment("hk1", 4, "ns:m:abc1234:h:tiny", 10, "tiny")
    assert again.status == st.MODEL_FAILED and again.reason == "unsafe_file"
    # A new commitment from the same hotkey is a new model.
    new = state.upsert_commitment("hk1", 4, "ns:m:def5678:h:tiny", 50, "tiny")
    assert new.id != a.id and new.status == st.MODEL_PENDING
    bad = state.upsert_commitment("hk2", 5, "garbage", 11, None, parse_error="has 1 field(s)")
    assert bad.status == st.MODEL_INVALID and bad.parse_error == "has 1 field(s)"


def _losses(n=4, value=2.0):
    return DocLosses(np.full(n, value * 10), np.full(n, 10), np.full(n, 40), np.zeros(n, dtype=np.int8))


def test_scoring_commits_results_verdicts_and_ema_together(state):
    m = state.upsert_commitment("hk1", 1, "ref", 5, "tiny")
    rid = state.start_round(100, "0xseed")
    state.record_round_data(rid, "tiny", "0xseed", ["p1", "p2"], "digest", 4)
    blob = _losses().to_bytes()
    state.complete_scoring(
        rid,
        [ResultRow("tiny", "hk1", 1, m.id, 2.0, 1.9, 2.1, 4, 100.0, 1.0, "", 1.0, 0, None, blob)],
        [VerdictRow("tiny", "hk0", "hk1", 0.004, -0.1, -0.2, -0.05, True)],
        {"tiny": {"hk1": 1.0}},
        [m.id],
    )
    assert state.round(rid).status == st.ROUND_SCORED
    [row] = state.results(rid)
    np.testing.assert_allclose(DocLosses.from_bytes(row.losses).per_token(), 2.0)
    assert state.verdicts(rid)[0].later_wins is True
    assert state.ema("tiny") == {"hk1": 1.0}
    assert state.model(m.id).last_round == rid
    assert state.round_data(rid)[0]["page_ids"] == ["p1", "p2"]
    # A round can only be scored once: the EMA is never applied twice.
    with pytest.raises(StateError):
        state.complete_scoring(rid, [], [], {"tiny": {"hk1": 0.5}})
    assert state.ema("tiny") == {"hk1": 1.0}


def test_failed_scoring_transaction_leaves_nothing_behind(state):
    rid = state.start_round(100)
    state.complete_scoring(state.start_round(90), [], [], {"tiny": {"old": 1.0}})
    bad = ResultRow("tiny", "hk1", 1, 999999, 2.0)  # model_id violates the foreign key
    with pytest.raises(sqlite3.IntegrityError):
        state.complete_scoring(rid, [bad], [], {"tiny": {"hk1": 1.0}})
    assert state.results(rid) == [] and state.ema("tiny") == {"old": 1.0}
    assert state.round(rid).status == st.ROUND_STARTED


def test_restart_discards_unfinished_rounds_and_never_resends_weights(tmp_path):
    path = tmp_path / "s.sqlite"
    s = ValidatorState(path)
    done = s.start_round(10)
    s.complete_scoring(done, [], [], {"tiny": {"a": 1.0}})
    a = s.record_weights_intent(done, 10, [0], [1.0])
    s.record_weights_outcome(a, True, "ok", block=11)
    s.finish_round(done, st.ROUND_WEIGHTS_SET)
    in_flight = s.start_round(20)
    s.complete_scoring(in_flight, [], [], {"tiny": {"a": 1.0}})
    s.record_weights_intent(in_flight, 20, [0], [1.0])  # killed before the outcome
    scored = s.start_round(30)
    s.complete_scoring(scored, [], [], {"tiny": {"a": 0.7, "b": 0.3}})  # killed before setting weights
    started = s.start_round(40)  # killed while scoring
    s.close()

    s = ValidatorState(path)
    rec = s.recover()
    assert rec.discarded == [started] and rec.unknown_weights == [in_flight] and rec.resumable == [scored]
    assert s.round(started).status == st.ROUND_DISCARDED
    assert s.round(in_flight).status == st.ROUND_DONE
    assert s.weights_sent(done) and s.weights_sent(in_flight) and not s.weights_sent(scored)
    for rid in (done, in_flight):
        with pytest.raises(StateError, match="already sent"):
            s.record_weights_intent(rid, 50, [0], [1.0])
    assert s.ema("tiny") == {"a": 0.7, "b": 0.3}  # EMA survives the restart
    assert s.last_weights_success_block() == 11
    # A second recovery finds nothing more to do.
    assert s.recover() == st.Recovery([], [], [scored])
    s.close()


def test_failed_attempts_can_be_retried_and_skips_are_recorded(state):
    rid = state.start_round(10)
    state.complete_scoring(rid, [], [], {})
    a1 = state.record_weights_intent(rid, 10, [1], [1.0])
    state.record_weights_outcome(a1, False, "rate_limited")
    a2 = state.record_weights_intent(rid, 12, [1], [1.0])
    state.record_weights_outcome(a2, True, "ok", block=12)
    state.record_weights_skipped(rid, 13, [1, 2], [float("nan"), 0.0], "weights are not finite")
    statuses = [a.status for a in state.weight_attempts(rid)]
    assert statuses == [st.ATTEMPT_FAILED, st.ATTEMPT_SUCCESS, st.ATTEMPT_SKIPPED]
    assert np.isnan(state.weight_attempts(rid)[-1].weights[0])


def test_latest_results_pick_each_models_newest_round(state):
    for block, loss in ((10, 3.0), (20, 2.5)):
        rid = state.start_round(block)
        state.complete_scoring(rid, [ResultRow("tiny", "hk", 1, None, loss)], [], {})
    latest = state.latest_results("tiny")
    assert latest[("tiny", "hk")][1].mean_loss == 2.5
