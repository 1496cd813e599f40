"""Window-keyed evidence and the champion chain: pure functions of public data."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from subnet.competitions import AdvantageSchedule
from subnet.scoring.decide import Entry, decide
from subnet.scoring.loss import RatioStat
from subnet.scoring.sequential import PairEvidence
from subnet.scoring.wins import Candidate, compute_wins
from subnet.scoring.windows import WindowStat, fold_pair, window_stat
from subnet.scoring.yuma import agreement, yuma

AGE = AdvantageSchedule(mode="age")
EARNED = AdvantageSchedule(mode="earned")
SD = 0.0004


def stats(theta: float, windows, seed=0, sd=SD):
    rng = np.random.default_rng(seed)
    return [WindowStat(w, theta + sd * rng.standard_normal(), sd**2, 2400) for w in windows]


def test_fold_matches_the_sequential_evidence_and_ignores_input_order():
    ws = stats(-0.001, range(150, 150 * 9, 150))
    verdict = fold_pair(ws, lambda w: 0.0)
    seq = PairEvidence()
    for s in ws:
        seq = seq.add(RatioStat(s.log_ratio, s.variance, s.n))
    assert verdict.evidence.rounds == seq.rounds == 8
    assert math.isclose(verdict.evidence.weighted_sum, seq.weighted_sum, rel_tol=1e-12)
    assert math.isclose(verdict.evidence.rho, seq.rho, rel_tol=1e-12)
    shuffled = ws[:]
    random.Random(3).shuffle(shuffled)
    assert fold_pair(shuffled, lambda w: 0.0) == verdict


def test_a_window_cannot_count_twice():
    ws = stats(-0.01, [150, 300])
    with pytest.raises(ValueError, match="window 300 appears twice"):
        fold_pair([*ws, ws[1]], lambda w: 0.0)


def test_the_win_is_sticky_from_the_first_crossing_window():
    ws = stats(-0.01, [150, 300, 450]) + [WindowStat(600, 0.02, SD**2, 2400)]  # a bad window after the win
    verdict = fold_pair(ws, lambda w: 0.004)
    assert verdict.later_wins and verdict.crossed_window == 150
    assert verdict.cross_high < -0.004


def test_the_advantage_is_the_one_at_each_windows_block():
    # 0.3% better: not enough against 0.4% at first, enough once the advantage has decayed below 0.25%.
    ws = stats(math.log(0.997), range(150, 150 * 40, 150), sd=0.0001)
    verdict = fold_pair(ws, lambda w: 0.004 if w < 3000 else 0.0025)
    assert verdict.later_wins and verdict.crossed_window >= 3000


def test_a_latest_window_with_more_failures_decides_the_pair():
    ws = stats(-0.01, [150, 300]) + [WindowStat(450, -0.01, SD**2, 2000, later_failed=5)]
    verdict = fold_pair(ws, lambda w: 0.0)
    assert not verdict.later_wins and verdict.decided_by_failures
    assert verdict.evidence.rounds == 2  # the failure window added no evidence


def test_window_stat_is_the_paired_ratio_of_total_nll():
    tokens = np.full(100, 10.0)
    earlier = np.full(100, 20.0) * (1 + 0.01 * np.random.default_rng(1).standard_normal(100))
    later = earlier * 0.99
    later[3] = np.nan
    s = window_stat(150, earlier, later, tokens)
    assert (s.window, s.n, s.earlier_failed, s.later_failed) == (150, 99, 0, 1)
    assert not s.usable


def near_copy_history(windows=range(150, 150 * 20, 150)):
    """L 14 days old (0.1% left), N a copy of L from yesterday, C 0.3% better than L from today."""
    day = 7_200
    now = 30 * day
    entries = [Entry("L", now - 14 * day, "hL", 20), Entry("N", now - day, "hN", 20),
               Entry("C", now - 200, "hC", 20)]
    ws = [now + w for w in windows]
    pair = {("L", "N"): stats(0.0, ws, 1), ("L", "C"): stats(math.log(0.997), ws, 2),
            ("N", "C"): stats(math.log(0.997), ws, 3)}
    return entries, pair, now


@pytest.mark.parametrize("schedule", [AGE, EARNED], ids=["age", "earned"])
def test_a_near_copy_cannot_split_the_challengers_prize(schedule):
    entries, pair, now = near_copy_history()
    d = decide(entries, pair, schedule)
    assert d.champion == "C" and d.chain == ["L", "C"]
    assert d.weights == {"L": 0.0, "N": 0.0, "C": 1.0}
    # The all-pairs verdicts do cycle: C beats L, N beats C (N's young advantage), L beats N.
    assert d.verdicts[("L", "C")].later_wins and not d.verdicts[("N", "C")].later_wins
    assert not d.verdicts[("L", "N")].later_wins


def test_win_rates_over_all_pairs_would_split_it_three_ways():
    """The failure the chain fixes, shown with the per-round win rates the validator used before."""
    rng = np.random.default_rng(0)
    day, now = 7_200, 30 * 7_200
    base = 2.2 * rng.lognormal(0, 0.18, 2400) * 400
    noise = lambda: 1 + 0.0002 * rng.standard_normal(2400)  # noqa: E731
    cands = [Candidate("L", now - 14 * day, base * noise()), Candidate("N", now - day, base * noise()),
             Candidate("C", now - 200, base * 0.997 * noise())]
    wins = compute_wins(cands, now, AGE)
    assert wins.win_rates == pytest.approx({"L": 0.5, "N": 0.5, "C": 0.5})


def test_decisions_are_a_function_of_the_windows_alone():
    entries, pair, _ = near_copy_history()
    shuffled = {k: list(reversed(v)) for k, v in reversed(list(pair.items()))}
    a, b = decide(entries, pair, EARNED), decide(list(reversed(entries)), shuffled, EARNED)
    assert a.weights == b.weights and a.earned == b.earned and a.chain == b.chain


def test_copies_failed_and_unscored_models_take_no_part():
    entries = [Entry("a", 10, "h", 3), Entry("b", 20, "h", 3), Entry("c", 30, "x", 3, failed="all documents failed"),
               Entry("d", 40, "y", 0)]
    d = decide(entries, {}, AGE)
    assert d.copies == {"b": "a"} and set(d.failed) == {"c", "d"} and d.champion == "a"


def test_an_earned_advantage_is_replayed_from_the_crossing_window():
    entries, pair, now = near_copy_history()
    d = decide(entries, pair, EARNED)
    e = d.earned["C"]
    v = d.verdicts[("L", "C")]
    assert e.leader == "L" and e.improvement_low == pytest.approx(-v.cross_high)
    assert EARNED.min_earned <= e.eps <= EARNED.cap


def test_yuma_clips_the_odd_validator_out():
    # uids 0-2 validators, 3 and 4 miners; validators 0 and 1 weight uid 3, validator 2 weights uid 4.
    w = np.zeros((5, 5))
    w[0, 3] = w[1, 3] = 1.0
    w[2, 4] = 1.0
    r = yuma([1, 1, 1, 0, 0], w, permits=[1, 1, 1, 0, 0])
    assert r.consensus[3] == pytest.approx(1.0) and r.consensus[4] == pytest.approx(0.0)
    assert r.validator_trust[:3] == pytest.approx([1.0, 1.0, 0.0])
    assert r.incentive[3] == pytest.approx(1.0)
    assert agreement({4: 1.0}, {3: 1.0, 4: 0.0}) == 0.0 and agreement({3: 2.0}, {3: 1.0}) == 1.0


def test_yuma_median_follows_stake():
    w = np.zeros((4, 4))
    w[0, 2], w[1, 3] = 1.0, 1.0
    r = yuma([0.6, 0.4, 0, 0], w, permits=[1, 1, 0, 0])  # the majority stake decides the consensus
    assert r.consensus[2] == pytest.approx(1.0) and r.consensus[3] == pytest.approx(0.0)
    assert r.validator_trust[:2] == pytest.approx([1.0, 0.0])
