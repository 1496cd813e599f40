"""The earlier model's advantage: its decay, its floor, odd ages, and when it reaches a target."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subnet.competitions import AdvantageSchedule
from subnet.scoring.advantage import advantage, blocks_until_advantage_below

DEFAULT = AdvantageSchedule()  # eps0 0.4%, half-life 50,400 blocks (7 days), no floor
BLOCKS_PER_DAY = 7_200


def _zero_or(low: float, high: float):
    """0 or a normal float: subnormal advantages have too few bits for the strict orderings tested here."""
    return st.one_of(st.just(0.0), st.floats(low, high))


def schedules():
    return st.builds(
        lambda eps0, floor_share, half_life: AdvantageSchedule(eps0, half_life, eps0 * floor_share),
        _zero_or(1e-9, 0.5),
        _zero_or(1e-6, 1.0),
        st.floats(1.0, 1e7),
    )


ages = st.one_of(st.floats(-1e9, 1e12), st.just(math.inf), st.just(math.nan))


def test_new_model_has_the_full_advantage():
    assert advantage(0, DEFAULT) == pytest.approx(0.004)


def test_advantage_halves_every_half_life():
    assert advantage(50_400, DEFAULT) == pytest.approx(0.002)
    assert advantage(100_800, DEFAULT) == pytest.approx(0.001)
    assert advantage(7 * BLOCKS_PER_DAY, DEFAULT) == pytest.approx(0.002)  # a week at 12 s blocks


def test_matches_subnet_29_within_a_few_percent_after_one_and_two_weeks():
    # Subnet 29: 0.004 * 0.995 ** (age / 361); half-life ~49,900 blocks, ours 50,400.
    for days in (7, 14):
        age = days * BLOCKS_PER_DAY
        theirs = 0.004 * 0.995 ** (age / 361)
        assert advantage(age, DEFAULT) == pytest.approx(theirs, rel=0.03)


def test_floor_is_never_undercut():
    schedule = AdvantageSchedule(eps0=0.004, half_life_blocks=1_000, floor=0.001)
    assert advantage(1_000, schedule) == pytest.approx(0.002)
    assert advantage(10_000, schedule) == 0.001
    assert advantage(math.inf, schedule) == 0.001


def test_infinite_age_gives_the_floor_and_zero_without_one():
    assert advantage(math.inf, DEFAULT) == 0.0


def test_negative_age_counts_as_new():
    assert advantage(-500, DEFAULT) == advantage(0, DEFAULT) == 0.004


def test_nan_age_gives_the_full_advantage():
    assert advantage(math.nan, DEFAULT) == 0.004


def test_zero_eps0_means_no_advantage_at_any_age():
    schedule = AdvantageSchedule(eps0=0.0)
    assert advantage(0, schedule) == advantage(1e6, schedule) == 0.0


@settings(max_examples=100, deadline=None)
@given(schedules(), ages, ages)
def test_advantage_never_grows_with_age_and_stays_in_bounds(schedule, a, b):
    younger, older = sorted((a, b), key=lambda x: 0.0 if math.isnan(x) or x < 0 else x)
    eps_young, eps_old = advantage(younger, schedule), advantage(older, schedule)
    assert eps_young >= eps_old
    for eps in (eps_young, eps_old):
        assert schedule.floor <= eps <= schedule.eps0
        assert math.isfinite(eps)


# ----------------------------------------------------------------------------- time to a target


def test_one_half_life_to_halve_the_advantage():
    assert blocks_until_advantage_below(0.002, 0, DEFAULT) == pytest.approx(50_400)
    assert blocks_until_advantage_below(0.001, 50_400, DEFAULT) == pytest.approx(50_400)


def test_zero_wait_when_already_at_or_below_target():
    assert blocks_until_advantage_below(0.004, 0, DEFAULT) == 0.0
    assert blocks_until_advantage_below(0.003, 200_000, DEFAULT) == 0.0


def test_never_when_the_floor_is_above_the_target():
    schedule = AdvantageSchedule(floor=0.001)
    assert blocks_until_advantage_below(0.0005, 0, schedule) == math.inf
    assert blocks_until_advantage_below(0.001, 0, schedule) == pytest.approx(100_800)


def test_never_reaches_zero_without_a_floor():
    assert blocks_until_advantage_below(0.0, 0, DEFAULT) == math.inf
    assert blocks_until_advantage_below(-0.001, 0, DEFAULT) == math.inf


def test_nan_target_is_refused():
    with pytest.raises(ValueError, match="target_eps"):
        blocks_until_advantage_below(math.nan, 0, DEFAULT)


@settings(max_examples=100, deadline=None)
@given(schedules(), st.floats(0.0, 1e7), _zero_or(1e-9, 1.0))
def test_waiting_the_answer_reaches_the_target_and_no_earlier(schedule, age, share):
    target = schedule.floor + share * (schedule.eps0 - schedule.floor)
    wait = blocks_until_advantage_below(target, age, schedule)
    if wait == math.inf:
        assert target <= 0 and schedule.floor == 0
        return
    assert wait >= 0
    assert advantage(age + wait, schedule) <= target * (1 + 1e-9) + 1e-15
    if wait >= 1:
        assert advantage(age + wait - 1, schedule) > target


def test_a_subnormal_target_is_reached_in_finite_time():
    schedule = AdvantageSchedule(eps0=0.5, half_life_blocks=1.0, floor=0.0)
    wait = blocks_until_advantage_below(1.1125369292535e-311, 0.0, schedule)
    assert math.isfinite(wait) and advantage(wait, schedule) <= 1.1125369292535e-311 * (1 + 1e-9)
