"""Evidence and earned advantages through the validator's judge and its state: windows, restarts, resets."""

from __future__ import annotations

import dataclasses
import math
import sqlite3

import numpy as np
import pytest

from subnet.competitions import DEFAULT_COMPETITIONS, AdvantageSchedule
from subnet.eval.types import STATUS_OK, DocLosses, ScoreOutcome
from subnet.validator import state as st
from subnet.validator.state import ValidatorState
from subnet.validator.judging import judge

N_DOCS = 1_200
TOKENS = np.clip(np.round(np.random.default_rng(0).lognormal(math.log(300), 1.0, N_DOCS)), 4, 4096).astype(np.int64)
EARNED = dataclasses.replace(
    DEFAULT_COMPETITIONS["tiny"],
    advantage=AdvantageSchedule(eps0=0.004, half_life_blocks=50_400, mode="earned", cap=0.01, min_earned=0.0005),
)
AGE = dataclasses.replace(EARNED, advantage=dataclasses.replace(EARNED.advantage, mode="age"))


@pytest.fixture
def state(tmp_path):
    s = ValidatorState(tmp_path / "state.sqlite")
    yield s
    s.close()


def commit(state: ValidatorState, hotkey: str, block: int, ref: str | None = None):
    m = state.upsert_commitment(hotkey, None, ref or f"ns:{hotkey}:abc1234:h:tiny", block, "tiny")
    state.mark_verified(m.id, f"/models/{m.id}", f"hash-{hotkey}-{block}")
    return state.model(m.id)


def outcome(nll: np.ndarray) -> ScoreOutcome:
    losses = DocLosses(nll.astype(np.float64), TOKENS.copy(), TOKENS * 4, np.full(N_DOCS, STATUS_OK, dtype=np.int8))
    return ScoreOutcome(losses, "", "", 1.0, 100.0)


def round_losses(rng, factors: dict[str, float], noise: float = 0.06) -> dict[str, np.ndarray]:
    base = 2.2 * rng.lognormal(0, 0.18, N_DOCS) * TOKENS
    return {k: base * f * (1 + noise * TOKENS**-0.366 * rng.standard_normal(N_DOCS)) for k, f in factors.items()}


def play(state, competition, factors, window, rng, failed: dict[str, str] | None = None,
         failed_docs: dict[str, int] | None = None, block: int | None = None):
    """One judged round on `window`'s documents, committed to the state as the round does."""
    models = {m.hotkey: m for m in state.models() if m.status == st.MODEL_VERIFIED}
    losses = round_losses(rng, factors)
    for key, count in (failed_docs or {}).items():
        losses[key][:count] = np.nan
    failed = failed or {}
    outcomes = {k: outcome(v) for k, v in losses.items() if k not in failed}
    keys = sorted(set(outcomes) | set(failed))
    j = judge(competition, models, keys, failed, outcomes, 0.95, window=window, digest="d",
              before=state.window_scores("tiny", window), stored_windows=state.scored_windows("tiny"),
              stored_pairs=state.window_pairs("tiny"))
    rid = state.start_round(block or window, window=window)
    state.complete_scoring(rid, j.results, j.verdicts, {"tiny": {k: w for k, w in j.weights.items() if w > 0}},
                           evidence=j.evidence, earned=j.earned, window_scores=j.window_scores,
                           window_pairs=j.window_pairs, decided={"tiny"})
    return j


def test_evidence_accumulates_across_rounds_and_survives_a_restart(tmp_path):
    path = tmp_path / "state.sqlite"
    state = ValidatorState(path)
    commit(state, "old", 100)
    commit(state, "new", 200)
    rng = np.random.default_rng(1)
    factors = {"old": 1.0, "new": 1 - 0.0042}  # 0.02% beyond a fresh 0.4% advantage
    first = play(state, AGE, factors, 300, rng)
    assert not first.win_rates["new"] and first.evidence[0].rounds == 1
    state.close()
    state = ValidatorState(path)  # a restart: the pair's evidence is read back, not lost
    (pair,) = state.pair_evidence("tiny").values()
    assert (pair.earlier, pair.later, pair.rounds) == ("old", "new", 1)
    widths = [pair.acc_high - pair.acc_low]
    for r in range(2, 5):
        play(state, AGE, factors, 300 + 150 * (r - 1), rng)
        (pair,) = state.pair_evidence("tiny").values()
        assert pair.rounds == r
        widths.append(pair.acc_high - pair.acc_low)
    assert widths == sorted(widths, reverse=True)  # each window narrows the accumulated interval
    state.close()


def test_a_round_repeated_within_one_window_adds_no_evidence(state):
    commit(state, "old", 100)
    commit(state, "new", 200)
    rng = np.random.default_rng(11)
    factors = {"old": 1.0, "new": 0.999}
    play(state, AGE, factors, 300, rng)
    before = state.window_pairs("tiny")
    again = play(state, AGE, factors, 300, rng)  # the same window again (losses as a GPU would differ)
    assert again.window_pairs == [] and again.window_scores == []
    assert state.window_pairs("tiny") == before
    (pair,) = state.pair_evidence("tiny").values()
    assert pair.rounds == 1


def test_a_resumed_or_restarted_round_cannot_add_its_window_twice(tmp_path):
    path = tmp_path / "state.sqlite"
    state = ValidatorState(path)
    commit(state, "old", 100)
    commit(state, "new", 200)
    j = play(state, AGE, {"old": 1.0, "new": 0.999}, 300, np.random.default_rng(12))
    state.close()
    state = ValidatorState(path)  # a restart that writes the same window's rows again (a replayed commit)
    rid = state.start_round(301, window=300)
    state.complete_scoring(rid, [], [], {}, window_scores=j.window_scores, window_pairs=j.window_pairs)
    ((key, stats),) = state.window_pairs("tiny").items()
    assert [s.window for s in stats] == [300]
    assert len(state.scored_windows("tiny")[key[0]]) == 1
    state.close()


def test_two_validators_fed_the_same_windows_in_another_order_with_a_restart_agree(tmp_path):
    rng = np.random.default_rng(13)
    factors = {"a": 1.0, "b": 0.996, "c": 0.996 * 0.999}
    windows = {w: round_losses(rng, factors) for w in (300, 450, 600, 750, 900)}

    def validator(path, order, restart_after):
        state = ValidatorState(path)
        for hk, block in (("a", 100), ("b", 150), ("c", 200)):
            commit(state, hk, block)
        for i, w in enumerate(order):
            models = {m.hotkey: m for m in state.models()}
            outcomes = {k: outcome(v) for k, v in windows[w].items()}
            j = judge(EARNED, models, sorted(outcomes), {}, outcomes, 0.95, window=w, digest="d",
                      before=state.window_scores("tiny", w), stored_windows=state.scored_windows("tiny"),
                      stored_pairs=state.window_pairs("tiny"))
            rid = state.start_round(1000 + i, window=w)
            state.complete_scoring(rid, j.results, j.verdicts, {"tiny": j.weights}, evidence=j.evidence,
                                   earned=j.earned, window_scores=j.window_scores, window_pairs=j.window_pairs,
                                   decided={"tiny"})
            if i == restart_after:
                state.close()
                state = ValidatorState(path)
        result = (state.ema("tiny"), {r.hotkey: r.eps for r in state.earned_advantages("tiny").values()})
        state.close()
        return result

    one = validator(tmp_path / "one.sqlite", [300, 450, 600, 750, 900], restart_after=-1)
    two = validator(tmp_path / "two.sqlite", [900, 450, 300, 750, 600], restart_after=2)
    assert one == two
    assert max(one[0], key=one[0].get) in {"b", "c"}


def test_a_new_commitment_resets_the_pairs_evidence(state):
    commit(state, "old", 100)
    commit(state, "new", 200)
    rng = np.random.default_rng(2)
    play(state, AGE, {"old": 1.0, "new": 0.999}, 300, rng)
    assert len(state.pair_evidence("tiny")) == 1
    commit(state, "new", 250, ref="ns:new:def5678:h:tiny")  # the miner committed another model
    rid = state.start_round(400)
    state.complete_scoring(rid, [], [], {})
    assert state.pair_evidence("tiny") == {}  # the superseded model's pairs are gone


def test_first_model_holds_eps0_and_a_winner_earns_its_demonstrated_improvement(state):
    commit(state, "first", 100)
    rng = np.random.default_rng(3)
    j = play(state, EARNED, {"first": 1.0}, 150, rng)
    assert j.earned == [] and state.earned_advantages() == {}  # no leader to beat: nothing earned
    commit(state, "leap", 200)
    j = play(state, EARNED, {"first": 1.0, "leap": 0.97}, 300, rng)  # a 3% leap
    (e,) = j.earned
    assert (e.hotkey, e.leader) == ("leap", "first") and e.eps == pytest.approx(0.01)  # clamped at the cap
    assert j.champion == "leap"
    assert 0.02 < e.improvement_low < 0.03 < e.improvement_high
    commit(state, "nudge", 400)
    j = play(state, EARNED, {"first": 1.0, "leap": 0.97, "nudge": 0.97 * (1 - 0.0125)}, 500, rng)
    e2 = next(e for e in j.earned if e.hotkey == "nudge")
    assert e2.leader == "leap"
    # A marginal win earns about what it showed beyond the leader's advantage: a little, never below the floor.
    assert 0.0005 <= e2.eps < 0.0125
    stored = state.earned_advantages("tiny")
    assert {r.hotkey for r in stored.values()} == {"leap", "nudge"}


def test_ties_and_losses_earn_nothing(state):
    commit(state, "a", 100)
    rng = np.random.default_rng(4)
    play(state, EARNED, {"a": 1.0}, 150, rng)
    commit(state, "b", 200)
    j = play(state, EARNED, {"a": 1.0, "b": 1.0}, 300, rng)
    assert j.earned == [] and not j.win_rates["b"]
    j = play(state, EARNED, {"a": 1.0, "b": 1.01}, 450, rng)
    assert j.earned == []


def test_a_win_by_the_leaders_failures_earns_only_the_floor(state):
    commit(state, "a", 100)
    rng = np.random.default_rng(5)
    play(state, EARNED, {"a": 1.0}, 150, rng)
    commit(state, "b", 200)
    j = play(state, EARNED, {"a": 1.0, "b": 1.0}, 301, rng, failed_docs={"a": 3})
    (e,) = j.earned
    assert e.by_failures and e.eps == pytest.approx(0.0005) and e.improvement_low == 0.0


def test_a_leader_that_could_not_be_scored_keeps_its_standing_and_nobody_earns(state):
    commit(state, "a", 100)
    rng = np.random.default_rng(5)
    play(state, EARNED, {"a": 1.0}, 150, rng)
    commit(state, "b", 200)
    j = play(state, EARNED, {"a": 1.0, "b": 1.0}, 300, rng, failed={"a": "timeout"})
    # The leader could not be scored (no window, no evidence): it keeps its standing, nobody earns.
    assert j.champion == "a" and j.win_rates["b"] == 0.0 and j.earned == []
    assert j.window_pairs == [] and [w.hotkey for w in j.window_scores] == ["b"]


def test_what_was_earned_is_kept_when_the_beaten_leader_later_fails_and_only_the_first_win_counts(state):
    commit(state, "a", 100)
    rng = np.random.default_rng(6)
    play(state, EARNED, {"a": 1.0}, 150, rng)
    commit(state, "b", 200)
    (e,) = play(state, EARNED, {"a": 1.0, "b": 0.99}, 300, rng).earned
    play(state, EARNED, {"a": 1.0, "b": 0.99}, 450, rng, failed={"a": "crashed"})
    play(state, EARNED, {"a": 1.0, "b": 0.95}, 600, rng)
    (kept,) = [r for r in state.earned_advantages("tiny").values() if r.hotkey == "b"]
    assert kept.eps == pytest.approx(e.eps) and kept.leader == "a"
    reopened = ValidatorState(state.path)  # a restart reads what was earned, with the verdict that earned it
    try:
        (again,) = reopened.earned_advantages("tiny").values()
        assert again == kept and again.round_id is not None
    finally:
        reopened.close()


def test_the_earned_advantage_is_what_the_winner_holds_in_later_pairs(state):
    from subnet.scoring.earned import EarnedAdvantage, model_advantage

    schedule = EARNED.advantage
    small = EarnedAdvantage("b", 0.001, "a", 0.001, 0.004, 2)
    assert model_advantage(0, schedule, small) == pytest.approx(0.001)
    assert model_advantage(50_400, schedule, small) == pytest.approx(0.0005)  # still decays with age
    assert model_advantage(0, schedule, None) == pytest.approx(0.004)  # nothing earned: eps0
    assert model_advantage(0, AGE.advantage, small) == pytest.approx(0.004)  # mode "age" ignores it
    month = 4 * 50_400
    commit(state, "a", 100)
    rng = np.random.default_rng(7)
    play(state, EARNED, {"a": 1.0}, 150, rng)
    commit(state, "b", month)  # a's advantage has decayed to 0.025% by now
    (e,) = play(state, EARNED, {"a": 1.0, "b": 0.996}, month + 100, rng).earned  # a modest 0.4% win
    assert 0.0005 < e.eps < 0.004
    commit(state, "c", month + 200)
    j = play(state, EARNED, {"a": 1.0, "b": 0.996, "c": 0.996 * (1 - 0.007)}, month + 300, rng)
    (bc,) = [v for v in j.verdicts if (v.earlier, v.later) == ("b", "c")]
    assert bc.eps == pytest.approx(e.eps * 0.5 ** (300 / 50_400))  # b's earned advantage, not eps0
    assert bc.later_wins


def test_migration_keeps_old_state_readable_and_recomputes_losses_as_nll_over_tokens(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    from subnet.validator.state.schema import _m7_evidence_and_one_loss

    before = st.MIGRATIONS.index(_m7_evidence_and_one_loss)  # a state written just before this migration
    for migration in st.MIGRATIONS[:before]:
        migration(db)
    db.execute(f"PRAGMA user_version = {before}")
    nll = np.array([10.0, 300.0, 50.0])
    tokens = np.array([2, 100, 20])
    blob = DocLosses(nll, tokens, tokens * 4, np.zeros(3, dtype=np.int8)).to_bytes()
    db.execute("INSERT INTO rounds (id, block, status, started_at) VALUES (1, 10, 'done', 0)")
    db.execute("INSERT INTO results (round_id, competition, hotkey, mean_loss, losses) VALUES (1, 'tiny', 'hk', ?, ?)",
               (float(np.mean(nll / tokens)), blob))
    db.commit()
    db.close()
    s = ValidatorState(path)
    (row,) = s.results(1)
    assert row.mean_loss == pytest.approx(360 / 122)
    assert row.ci_low < row.mean_loss < row.ci_high
    assert s.pair_evidence() == {} and s.earned_advantages() == {}
    s.close()


def test_scores_table_api_and_cli_show_pair_intervals_and_where_each_advantage_came_from(tmp_path):
    import json
    import urllib.request

    from typer.testing import CliRunner

    from subnet.commands.main import app
    from subnet.validator.api import StatusServer, build_app
    from subnet.validator.metrics import ValidatorMetrics
    from subnet.validator.score_table import evidence_table, scores_table

    state = ValidatorState(tmp_path / "state.sqlite")
    commit(state, "a", 100)
    rng = np.random.default_rng(8)
    play(state, EARNED, {"a": 1.0}, 150, rng)
    commit(state, "b", 200)
    for r in (2, 3):
        play(state, EARNED, {"a": 1.0, "b": 0.98}, 150 * r, rng)
    competitions = {"tiny": EARNED}
    rows = {r["hotkey"]: r for r in scores_table(state, "tiny", 400, competitions)}
    assert rows["a"]["advantage"] == pytest.approx(0.004 * 0.5 ** (300 / 50_400))
    assert rows["a"]["advantage_source"].startswith("eps0")
    assert rows["b"]["advantage_source"].startswith("earned") and "beat a by at least" in rows["b"]["advantage_source"]
    earned_b = next(iter(state.earned_advantages().values())).eps
    assert rows["b"]["advantage"] == pytest.approx(earned_b * 0.5 ** (200 / 50_400))
    (pair,) = evidence_table(state, "tiny")
    assert (pair["earlier"], pair["later"], pair["rounds"], pair["later_wins"]) == ("a", "b", 2, True)
    assert pair["acc_low"] < pair["diff"] < pair["acc_high"] < 0

    server = StatusServer(build_app(state, ValidatorMetrics(), competitions=competitions), "127.0.0.1", 0)
    port = server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/scores?competition=tiny", timeout=10) as response:
            payload = json.loads(response.read())
        assert payload["evidence"] == [pair]
        assert {r["hotkey"]: r["advantage_source"] for r in payload["scores"]}["b"] == rows["b"]["advantage_source"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/evidence", timeout=10) as response:
            assert json.loads(response.read())["evidence"] == [pair]
    finally:
        server.stop()
    state.close()
    run = CliRunner().invoke(app, ["scores", "--state", str(tmp_path), "--json"])
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout.strip().splitlines()[-1])["evidence"][0]["rounds"] == 2
