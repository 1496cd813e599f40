"""The paired test between an earlier and a later model on the same documents."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from subnet.competitions import AdvantageSchedule
from subnet.scoring.compare import paired_compare
from subnet.scoring.stats import mean_interval

NO_ADVANTAGE = AdvantageSchedule(eps0=0.0)
DEFAULT = AdvantageSchedule()
DAY = 7_200  # blocks


def fineweb_like(n: int, seed: int) -> np.ndarray:
    """Per-document losses with mean ~2.17 and std ~0.39 (lognormal: skewed, like real losses)."""
    sigma2 = math.log(1 + (0.39 / 2.17) ** 2)
    return np.random.default_rng(seed).lognormal(math.log(2.17) - sigma2 / 2, math.sqrt(sigma2), n)


def improved(earlier: np.ndarray, factor: float, noise: float, seed: int) -> np.ndarray:
    """A later model: a fixed relative improvement on every document, plus its own per-document noise."""
    return factor * earlier + np.random.default_rng(seed).normal(0.0, noise, earlier.size)


# ----------------------------------------------------------------------------- the statistical heart


def test_paired_test_resolves_a_tenth_of_a_percent_that_unpaired_means_cannot():
    """0.1% better on 2,000 documents: obvious when paired, invisible to separate error bars."""
    earlier = fineweb_like(2_000, seed=11)
    later = improved(earlier, 0.999, 0.002, seed=12)
    assert earlier.mean() == pytest.approx(2.17, rel=0.02) and earlier.std() == pytest.approx(0.39, rel=0.1)

    paired = paired_compare(earlier, later, 0, NO_ADVANTAGE)
    assert paired.later_wins
    assert paired.ci_high < 0 and paired.acc_high < 0
    assert paired.diff_mean == pytest.approx(-0.001, rel=0.1)  # relative: L_later / L_earlier - 1

    # Unpaired on the same documents (Welch: each mean with its own error bar).
    a, b = mean_interval(earlier), mean_interval(later)
    welch_half = 1.96 * math.hypot(a.stderr, b.stderr)
    assert b.mean - a.mean + welch_half > 0 > b.mean - a.mean - welch_half
    # Unpaired on independent samples of documents, the way averages of separate runs compare.
    other_docs = improved(fineweb_like(2_000, seed=13), 0.999, 0.002, seed=14)
    c = mean_interval(other_docs)
    independent_half = 1.96 * math.hypot(a.stderr, c.stderr)
    assert c.mean - a.mean + independent_half > 0 > c.mean - a.mean - independent_half
    # The paired interval (relative, so scaled by the earlier loss) is about 100x narrower than the unpaired one.
    assert welch_half / ((paired.ci_high - paired.ci_low) / 2 * a.mean) > 50


def test_false_wins_are_rare_when_the_later_model_only_matches_the_threshold():
    """Later exactly (1 - eps) x earlier plus symmetric noise: a win is a false positive (<= 2.5%)."""
    false_wins = 0
    for trial in range(400):
        earlier = fineweb_like(200, seed=1_000 + trial)
        later = improved(earlier, 1 - 0.004, 0.01, seed=5_000 + trial)
        false_wins += paired_compare(earlier, later, 0, DEFAULT).later_wins
    assert false_wins / 400 <= 0.045  # 2.5% nominal; binomial slack for 400 trials


# ----------------------------------------------------------------------------- the advantage


def test_newcomer_three_tenths_better_loses_to_a_one_day_old_incumbent():
    earlier = fineweb_like(2_000, seed=21)
    later = improved(earlier, 0.997, 0.002, seed=22)
    c = paired_compare(earlier, later, DAY, DEFAULT)
    assert c.eps == pytest.approx(0.004 * 0.5 ** (1 / 7))
    assert not c.later_wins and -c.eps < c.diff_mean < 0
    assert "not below" in c.reason


def test_same_newcomer_wins_against_a_fourteen_day_old_incumbent():
    earlier = fineweb_like(2_000, seed=21)
    later = improved(earlier, 0.997, 0.002, seed=22)
    c = paired_compare(earlier, later, 14 * DAY, DEFAULT)
    assert c.eps == pytest.approx(0.001)
    assert c.later_wins and c.acc_high < -c.eps
    assert "over 1 round(s)" in c.reason


def test_diff_is_the_relative_difference_of_the_two_losses_with_a_delta_method_error():
    earlier = fineweb_like(500, seed=3)
    later = improved(earlier, 0.99, 0.01, seed=4)
    c = paired_compare(earlier, later, 0, DEFAULT)
    assert c.diff_mean == pytest.approx(later.sum() / earlier.sum() - 1)
    assert c.diff_mean == pytest.approx(c.later_mean / c.earlier_mean - 1)
    assert c.n == 500 and c.ci_low < c.diff_mean < c.ci_high
    influence = later / later.mean() - earlier / earlier.mean()  # delta method for log(mean b / mean a)
    assert c.stderr == pytest.approx(np.std(influence, ddof=1) / math.sqrt(500))


def test_better_on_average_but_not_significantly_is_not_a_win():
    earlier = fineweb_like(50, seed=5)
    noise = np.random.default_rng(6).normal(size=50)
    later = earlier - 0.01 + 0.1 * (noise - noise.mean()) / noise.std(ddof=1)  # mean diff -0.01, t = -0.71
    c = paired_compare(earlier, later, 0, NO_ADVANTAGE)
    assert c.diff_mean == pytest.approx(-0.01 / earlier.mean())
    assert not c.later_wins and c.ci_high > 0
    assert "not yet significantly" in c.reason


def test_higher_confidence_is_harder_to_win():
    earlier = fineweb_like(300, seed=7)
    later = improved(earlier, 0.997, 0.025, seed=8)
    verdicts = [paired_compare(earlier, later, 0, NO_ADVANTAGE, conf).later_wins for conf in (0.5, 0.95, 0.9999)]
    assert verdicts == sorted(verdicts, reverse=True)
    assert verdicts[0] and not verdicts[-1]


# ----------------------------------------------------------------------------- copies and ties


def test_identical_losses_never_win_even_without_advantage():
    x = fineweb_like(1_000, seed=9)
    assert not paired_compare(x, x.copy(), 0, NO_ADVANTAGE).later_wins
    assert not paired_compare(x, x.copy(), 10**9, DEFAULT).later_wins


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(0, 60), elements=st.one_of(st.floats(0, 50), st.just(math.nan))),
    st.floats(-1e6, 1e9),
    st.sampled_from([DEFAULT, NO_ADVANTAGE, AdvantageSchedule(0.01, 100, 0.005)]),
)
def test_a_model_never_beats_an_identical_copy_of_itself(losses, age, schedule):
    assert not paired_compare(losses, losses.copy(), age, schedule).later_wins


# ----------------------------------------------------------------------------- failed documents


def test_later_with_a_failed_document_loses_however_good_it_is():
    earlier = fineweb_like(200, seed=10)
    later = earlier * 0.5
    later[17] = np.nan
    c = paired_compare(earlier, later, 0, DEFAULT)
    assert not c.later_wins and (c.earlier_failed, c.later_failed) == (0, 1)
    assert "later model failed more" in c.reason
    assert c.n == 199 and math.isfinite(c.ci_high)  # the interval is still reported


def test_earlier_with_more_failed_documents_loses_however_good_it_is():
    earlier = fineweb_like(200, seed=10) * 0.5
    earlier[[3, 4]] = [np.inf, np.nan]
    later = fineweb_like(200, seed=10)
    later[9] = np.nan
    c = paired_compare(earlier, later, 0, DEFAULT)
    assert c.later_wins and (c.earlier_failed, c.later_failed) == (2, 1)
    assert c.n == 197


def test_equal_failures_are_dropped_from_the_pairing():
    earlier = fineweb_like(300, seed=12)
    later = improved(earlier, 0.99, 0.001, seed=13)
    earlier[0], later[1] = np.nan, -np.inf
    c = paired_compare(earlier, later, 0, DEFAULT)
    assert c.n == 298 and c.later_wins
    assert c.earlier_mean == pytest.approx(np.mean(earlier[2:]))  # each document weighs 1 without tokens


def test_no_finite_pairs_and_equal_failures_keeps_the_earlier_model():
    nan = np.full(5, np.nan)
    assert not paired_compare(nan, nan, 0, DEFAULT).later_wins
    half_a = np.array([1.0, np.nan])
    half_b = np.array([np.nan, 1.0])
    c = paired_compare(half_a, half_b, 0, DEFAULT)
    assert not c.later_wins and c.n == 0 and math.isnan(c.diff_mean)
    assert (c.ci_low, c.ci_high) == (-math.inf, math.inf)


def test_all_failed_earlier_loses_to_a_later_model_that_scored():
    c = paired_compare(np.full(4, np.nan), np.array([2.0, 2.1, 2.2, 2.3]), 0, DEFAULT)
    assert c.later_wins and c.n == 0


def test_a_single_shared_document_is_not_evidence():
    c = paired_compare(np.array([3.0]), np.array([1.0]), 0, DEFAULT)
    assert not c.later_wins and c.n == 1 and c.ci_high == math.inf


finite_or_not = st.one_of(st.floats(0, 20), st.just(math.nan), st.just(math.inf), st.just(-math.inf))


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 40).flatmap(
        lambda n: st.tuples(
            hnp.arrays(np.float64, n, elements=finite_or_not), hnp.arrays(np.float64, n, elements=finite_or_not)
        )
    ),
    st.floats(0, 1e7),
)
def test_non_finite_losses_always_lose_and_never_crash(pair, age):
    earlier, later = pair
    c = paired_compare(earlier, later, age, DEFAULT)
    if c.later_failed > c.earlier_failed:
        assert not c.later_wins
    elif c.earlier_failed > c.later_failed:
        assert c.later_wins
    assert c.earlier_failed == int((~np.isfinite(earlier)).sum())
    assert c.n == int((np.isfinite(earlier) & np.isfinite(later)).sum())
    assert not math.isnan(c.ci_low) and not math.isnan(c.ci_high)


# ----------------------------------------------------------------------------- bad input


def test_different_document_counts_are_refused():
    with pytest.raises(ValueError, match="same documents"):
        paired_compare(np.ones(3), np.ones(4), 0, DEFAULT)


def test_matrix_losses_are_refused():
    with pytest.raises(ValueError, match="earlier_losses must be a 1-D"):
        paired_compare(np.ones((2, 2)), np.ones((2, 2)), 0, DEFAULT)
