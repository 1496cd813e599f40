"""Weights from win rates (softmax and power), and the EMA that smooths them across rounds."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subnet.scoring.weights import ema_update, weights_from_win_rates

keys = st.text("abcdefgh", min_size=1, max_size=3)
win_rate_maps = st.dictionaries(keys, st.one_of(st.floats(0.0, 1.0), st.just(0.0), st.just(1.0)), max_size=12)
weight_maps = st.dictionaries(
    keys, st.one_of(st.floats(0.0, 1e300), st.just(math.nan), st.just(math.inf), st.floats(-1.0, 0.0)), max_size=12
)


def test_softmax_gives_nearly_everything_to_the_best():
    w = weights_from_win_rates({"best": 1.0, "second": 0.5, "loser": 0.0})
    assert w["best"] == pytest.approx(1.0)
    assert w["second"] == pytest.approx(math.exp(-50), rel=1e-6)
    assert w["loser"] == 0.0  # exactly: a zero win rate (copy, failure, lost everything) earns nothing


def test_high_temperature_spreads_weight_over_positive_win_rates_only():
    w = weights_from_win_rates({"a": 1.0, "b": 0.9, "copy": 0.0}, temperature=100.0)
    assert w["a"] == pytest.approx(0.5, abs=1e-3) and w["b"] == pytest.approx(0.5, abs=1e-3)
    assert w["copy"] == 0.0


def test_power_weights_are_proportional_to_win_rate_to_the_power():
    w = weights_from_win_rates({"a": 1.0, "b": 0.5, "c": 0.0}, method="power", power=2.0)
    assert w == pytest.approx({"a": 0.8, "b": 0.2, "c": 0.0})


def test_power_of_tiny_win_rates_does_not_underflow_to_nothing():
    w = weights_from_win_rates({"a": 1e-200, "b": 0.5e-200}, method="power", power=8.0)
    assert sum(w.values()) == pytest.approx(1.0) and w["a"] > w["b"] > 0


def test_all_zero_or_empty_gives_zeros():
    assert weights_from_win_rates({"a": 0.0, "b": 0.0}) == {"a": 0.0, "b": 0.0}
    assert weights_from_win_rates({}) == {}
    assert weights_from_win_rates({"a": 0.0}, method="power") == {"a": 0.0}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"method": "argmax"}, "method"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"method": "power", "power": -1.0}, "power"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs, field):
    with pytest.raises(ValueError, match=field):
        weights_from_win_rates({"a": 1.0}, **kwargs)


@pytest.mark.parametrize("rate", [math.nan, -0.1, 1.5, math.inf])
def test_bad_win_rates_are_refused_naming_the_key(rate):
    with pytest.raises(ValueError, match="win rate of 'hk'"):
        weights_from_win_rates({"ok": 0.5, "hk": rate})


@settings(max_examples=100, deadline=None)
@given(win_rate_maps, st.sampled_from(["softmax", "power"]), st.floats(1e-4, 10.0))
def test_weights_sum_to_one_or_are_all_zero_and_keep_the_ranking(rates, method, knob):
    w = weights_from_win_rates(rates, temperature=knob, method=method, power=knob)
    assert set(w) == set(rates)
    assert all(math.isfinite(v) and v >= 0 for v in w.values())
    total = sum(w.values())
    assert total == pytest.approx(1.0) if any(r > 0 for r in rates.values()) else total == 0.0
    for a in rates:
        for b in rates:
            if rates[a] > rates[b]:
                assert w[a] >= w[b]
            if rates[a] == 0:
                assert w[a] == 0.0


# ----------------------------------------------------------------------------- EMA


def test_ema_blends_over_the_union_of_keys():
    assert ema_update({"a": 1.0}, {"b": 1.0}, alpha=0.5) == pytest.approx({"a": 0.5, "b": 0.5})
    assert ema_update({"a": 0.5, "b": 0.5}, {"a": 1.0}, alpha=0.2) == pytest.approx({"a": 0.6, "b": 0.4})


def test_first_round_takes_the_current_weights():
    assert ema_update({}, {"a": 0.25, "b": 0.75}) == pytest.approx({"a": 0.25, "b": 0.75})


def test_result_is_renormalised_when_inputs_do_not_sum_to_one():
    # A deregistered key was removed from the previous EMA: the rest is scaled back up to 1.
    assert ema_update({"a": 0.3}, {"a": 0.5, "b": 0.5}, alpha=0.5) == pytest.approx({"a": 0.4 / 0.65, "b": 0.25 / 0.65})


def test_a_former_winner_fades_out_and_is_dropped():
    weights = {"old": 1.0}
    for rounds in range(1, 40):
        weights = ema_update(weights, {"new": 1.0}, alpha=0.5)
        if "old" not in weights:
            break
    assert rounds == 30  # 0.5 ** 30 < 1e-9: dust is dropped
    assert weights == {"new": 1.0}


def test_alpha_one_forgets_and_alpha_zero_ignores_the_present():
    assert ema_update({"a": 1.0}, {"b": 1.0}, alpha=1.0) == {"b": 1.0}
    assert ema_update({"a": 1.0}, {"b": 1.0}, alpha=0.0) == {"a": 1.0}


def test_corrupt_stored_values_count_as_zero():
    assert ema_update({"a": math.nan, "b": -3.0, "c": math.inf}, {"d": 1.0}) == {"d": 1.0}


def test_nothing_positive_gives_nothing():
    assert ema_update({}, {}) == {}
    assert ema_update({"a": 0.0}, {"b": 0.0}) == {}


@pytest.mark.parametrize("alpha", [-0.1, 1.1, math.nan])
def test_bad_alpha_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha"):
        ema_update({"a": 1.0}, {"a": 1.0}, alpha=alpha)


@settings(max_examples=100, deadline=None)
@given(weight_maps, weight_maps, st.floats(0.0, 1.0))
def test_ema_is_normalised_finite_and_never_nan(previous, current, alpha):
    new = ema_update(previous, current, alpha)
    assert set(new) <= set(previous) | set(current)
    assert all(math.isfinite(v) and v >= 1e-9 * 0.99 for v in new.values())
    if new:
        assert math.fsum(new.values()) == pytest.approx(1.0)
