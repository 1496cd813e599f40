"""Evidence across rounds: the confidence sequence's error rate over long histories, and pooling."""

import math

import numpy as np
import pytest

from subnet.competitions import AdvantageSchedule
from subnet.scoring.compare import paired_compare
from subnet.scoring.loss import RatioStat
from subnet.scoring.sequential import PairEvidence, boundary

ROUND_SD = 0.0002  # sd of one round's log ratio: 2,400 documents of a close checkpoint pair


def false_win_rate(confidence: float, histories: int, rounds: int, seed: int) -> float:
    """Equal models, no advantage left (the hardest case): how often does the later one ever win?"""
    rng = np.random.default_rng(seed)
    wins = 0
    n = 2_400
    for _ in range(histories):
        evidence = PairEvidence()
        estimates = ROUND_SD * rng.standard_normal(rounds)
        variances = ROUND_SD**2 * rng.chisquare(n - 1, rounds) / (n - 1)  # the variance is estimated too
        for est, var in zip(estimates, variances):
            evidence = evidence.add(RatioStat(float(est), float(var), n))
            if evidence.beats(0.0, confidence):
                wins += 1
                break
    return wins / histories


def test_an_equal_model_ever_wins_at_most_2_5_percent_of_histories():
    """2,000 histories of 250 rounds: 2.5% has a binomial sd of 0.35%, so 5% would be 7 sd above the bound."""
    rate = false_win_rate(0.95, histories=2_000, rounds=250, seed=1)
    assert rate <= 0.034
    # The bound is not vacuous: a looser confidence lets markedly more false wins through.
    assert false_win_rate(0.6, histories=500, rounds=250, seed=2) > rate + 0.05


def test_a_small_real_margin_wins_once_rounds_accumulate():
    rng = np.random.default_rng(3)
    eps, margin = 0.001, 0.0005
    theta = math.log1p(-(eps + margin))
    evidence, first = PairEvidence(), None
    for r in range(1, 21):
        evidence = evidence.add(RatioStat(theta + ROUND_SD * float(rng.standard_normal()), ROUND_SD**2, 2_400))
        if evidence.beats(eps) and first is None:
            first = r
    assert first is not None and first <= 6
    low, high = evidence.relative_interval()
    assert low < -(eps + margin) < high < -eps


def test_pooling_is_by_information_and_order_free():
    a, b = RatioStat(-0.001, 4e-8, 100), RatioStat(-0.003, 1e-8, 100)
    ab, ba = PairEvidence().add(a).add(b), PairEvidence().add(b).add(a)
    assert ab.estimate == pytest.approx(ba.estimate) == pytest.approx((-0.001 / 4 + -0.003) / (1 / 4 + 1))
    assert ab.rounds == 2 and ab.information == pytest.approx(1 / 4e-8 + 1 / 1e-8)
    # More information narrows the sequence.
    assert np.diff(ab.log_interval()) < np.diff(PairEvidence().add(a).log_interval())


def test_rounds_without_a_usable_statistic_add_nothing():
    e = PairEvidence().add(RatioStat(-0.01, 1e-6, 500))
    for bad in (RatioStat(math.nan, math.inf, 0), RatioStat(-0.5, 1e-6, 1), RatioStat(-0.5, math.inf, 9)):
        assert e.add(bad) == e
    assert PairEvidence().log_interval() == (-math.inf, math.inf)
    assert not PairEvidence().beats(0.0)


def test_boundary_is_the_normal_mixture_and_rho_is_fixed_by_the_first_round():
    alpha = 0.05
    assert boundary(0.0, 7.0, alpha) == pytest.approx(math.sqrt(7.0 * 2 * math.log(1 / alpha)))
    assert boundary(7.0, 7.0, alpha) == pytest.approx(math.sqrt(14.0 * (math.log(2) + 2 * math.log(1 / alpha))))
    first = PairEvidence().add(RatioStat(-0.01, 1e-6, 500), design_rounds=3)
    assert first.rho == pytest.approx(3e6)
    assert first.add(RatioStat(-0.01, 1e-8, 500)).rho == first.rho  # later rounds never move it
    # The width scales with the noise: the same rounds at 10x the sd give a 10x wider sequence.
    quiet = PairEvidence().add(RatioStat(0.0, 1e-8, 500)).add(RatioStat(0.0, 1e-8, 500))
    noisy = PairEvidence().add(RatioStat(0.0, 1e-6, 500)).add(RatioStat(0.0, 1e-6, 500))
    assert np.diff(noisy.log_interval())[0] == pytest.approx(10 * np.diff(quiet.log_interval())[0])
    with pytest.raises(ValueError):
        PairEvidence().add(RatioStat(0.0, 1e-6, 500), design_rounds=0.0)


def test_paired_compare_pools_the_prior_with_this_round():
    """A later model 0.13% better than a 0.1% guard: not decided in one round, decided with the prior."""
    rng = np.random.default_rng(4)
    tokens = np.clip(np.round(rng.lognormal(math.log(300), 1.0, 2_400)), 4, 4096)
    schedule = AdvantageSchedule(eps0=0.001, half_life_blocks=1e12)
    rounds, evidence, first = [], None, None
    for r in range(1, 25):
        earlier = 2.2 * rng.lognormal(0, 0.18, tokens.size) * tokens
        later = earlier * (1 - 0.0013) * (1 + 0.06 * tokens**-0.366 * rng.standard_normal(tokens.size))
        c = paired_compare(earlier, later, 0, schedule, tokens=tokens, prior=evidence)
        evidence = c.evidence
        rounds.append(c)
        if c.later_wins and first is None:
            first = r
    assert not rounds[0].later_wins and rounds[0].rounds == 1
    assert first is not None and 1 < first <= 24
    assert rounds[-1].rounds == 24 and rounds[-1].acc_high - rounds[-1].acc_low < rounds[0].acc_high - rounds[0].acc_low
