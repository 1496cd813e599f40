"""Confidence intervals of a mean: known values, odd inputs, coverage, and the t quantile fallback."""

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from subnet.scoring.stats import Interval, _hill_t_quantile, mean_interval, t_quantile


def test_known_small_sample():
    iv = mean_interval([1, 2, 3, 4, 5])
    half = 2.7764451051977987 * math.sqrt(2.5 / 5)  # t(0.975, df 4) * sd / sqrt(n)
    assert iv.n == 5
    assert iv.mean == pytest.approx(3.0)
    assert iv.stderr == pytest.approx(math.sqrt(0.5))
    assert (iv.low, iv.high) == pytest.approx((3 - half, 3 + half))
    assert iv.half_width == pytest.approx(half)


def test_agrees_with_scipy_t_interval():
    x = np.random.default_rng(1).lognormal(0.77, 0.18, size=300)
    iv = mean_interval(x, confidence=0.9)
    low, high = scipy.stats.t.interval(0.9, df=299, loc=x.mean(), scale=scipy.stats.sem(x))
    assert (iv.low, iv.high) == pytest.approx((low, high), rel=1e-12)


def test_non_finite_values_are_skipped():
    iv = mean_interval([1.0, np.nan, 3.0, np.inf, -np.inf])
    assert iv.n == 2
    assert iv.mean == 2.0


def test_no_finite_values():
    iv = mean_interval([np.nan, np.inf])
    assert iv.n == 0 and math.isnan(iv.mean)
    assert (iv.stderr, iv.low, iv.high) == (math.inf, -math.inf, math.inf)
    assert mean_interval([]).n == 0


def test_one_value_has_an_unbounded_interval():
    assert mean_interval([2.5]) == Interval(2.5, math.inf, -math.inf, math.inf, 1)


def test_constant_values_have_a_zero_width_interval():
    iv = mean_interval([2.0] * 10)
    assert iv.stderr == 0 and iv.low == iv.high == 2.0


def test_higher_confidence_is_wider():
    x = np.random.default_rng(2).normal(size=50)
    assert mean_interval(x, 0.99).half_width > mean_interval(x, 0.95).half_width > mean_interval(x, 0.5).half_width


def test_overflowing_values_give_an_unbounded_interval_not_a_crash():
    iv = mean_interval([1e308, 1.7e308, -1e308])
    assert iv.n == 3 and iv.low == -math.inf and iv.high == math.inf


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.1, math.nan])
def test_bad_confidence_is_refused_by_name(confidence):
    with pytest.raises(ValueError, match="confidence"):
        mean_interval([1.0, 2.0], confidence)


def test_coverage_is_close_to_nominal():
    """Over many samples the 95% interval covers the true mean about 95% of the time."""
    rng = np.random.default_rng(3)
    samples = rng.normal(2.17, 0.39, size=(2_000, 30))
    covered = sum(iv.low <= 2.17 <= iv.high for iv in map(mean_interval, samples))
    assert 0.93 <= covered / 2_000 <= 0.97


def test_hill_fallback_matches_scipy():
    for df in (1, 2, 3, 4, 5, 9, 30, 120, 2_399, 100_000):
        for confidence in (0.5, 0.8, 0.9, 0.95, 0.99, 0.999):
            assert _hill_t_quantile(1 - confidence, df) == pytest.approx(t_quantile(confidence, df), rel=1e-4)


def test_t_quantile_refuses_zero_degrees_of_freedom():
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_quantile(0.95, 0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(math.nan), st.just(math.inf)), max_size=40))
def test_interval_brackets_the_mean_and_counts_finite_values(values):
    iv = mean_interval(values)
    finite = [v for v in values if math.isfinite(v)]
    assert iv.n == len(finite)
    if finite:
        assert iv.low <= iv.mean <= iv.high
        assert iv.mean == pytest.approx(float(np.mean(finite)), abs=1e-6)
