"""The round scheduler: deterministic, within budget, and fair to old models."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as hs

from subnet.validator.scheduler import SchedulingCandidate as C
from subnet.validator.scheduler import is_eligible, schedule_round


def test_eligibility_needs_window_plus_margin():
    assert is_eligible(100, 260, window=150, margin=10)
    assert not is_eligible(100, 259, window=150, margin=10)


def test_holders_first_then_a_revisit_then_new_then_other_revisits():
    pool = [
        C("holder_small", "tiny", 0, weight=0.2, last_evaluated_round=5),
        C("holder_big", "tiny", 0, weight=0.8, last_evaluated_round=5),
        C("new_late", "tiny", 90),
        C("new_early", "tiny", 50),
        C("old_recent", "tiny", 0, 0.0, last_evaluated_round=4),
        C("old_stale", "tiny", 0, 0.0, last_evaluated_round=1),
        C("too_young", "tiny", 950),
    ]
    s = schedule_round(pool, 1000, 5, min_revisits=1)
    assert s.selected["tiny"] == ("holder_big", "holder_small", "old_stale", "new_early", "new_late")
    assert s.deferred["tiny"] == ("old_recent",)
    assert s.ineligible == ("too_young",)
    # With more room, remaining revisits come last; with none reserved, new ones go first.
    assert schedule_round(pool, 1000, 10).selected["tiny"][-1] == "old_recent"
    s0 = schedule_round(pool, 1000, 3, min_revisits=0)
    assert s0.selected["tiny"] == ("holder_big", "holder_small", "new_early")


def test_budget_is_per_competition():
    pool = [C(f"a{i}", "a", 0) for i in range(5)] + [C(f"b{i}", "b", 0) for i in range(5)]
    s = schedule_round(pool, 1000, {"a": 2, "b": 4})
    assert len(s.selected["a"]) == 2 and len(s.selected["b"]) == 4


def test_revisits_rotate_through_every_old_model():
    """Oldest-evaluated-first means that over enough rounds every model is seen again."""
    last = {f"m{i}": 0 for i in range(6)}
    seen = set()
    for rnd in range(1, 7):
        pool = [C(k, "tiny", 0, 0.0, last_evaluated_round=v) for k, v in last.items()]
        chosen = schedule_round(pool, 10_000, 2).selected["tiny"]
        for k in chosen:
            last[k] = rnd
        seen.update(chosen)
    assert seen == set(last)


cands = hs.lists(
    hs.builds(
        C,
        key=hs.text("abcdef", min_size=1, max_size=4),
        competition=hs.sampled_from(["x", "y"]),
        commit_block=hs.integers(0, 2000),
        weight=hs.sampled_from([0.0, 0.1, 0.5]),
        last_evaluated_round=hs.one_of(hs.none(), hs.integers(0, 10)),
    ),
    max_size=30,
    unique_by=lambda c: c.key,
)


@settings(max_examples=150, deadline=None)
@given(cands, hs.integers(0, 8), hs.integers(0, 3))
def test_schedule_is_deterministic_within_budget_and_order_independent(pool, budget, revisits):
    s1 = schedule_round(pool, 1500, budget, min_revisits=revisits)
    shuffled = list(pool)
    random.Random(0).shuffle(shuffled)
    s2 = schedule_round(shuffled, 1500, budget, min_revisits=revisits)
    assert s1 == s2
    eligible = {c.key for c in pool if is_eligible(c.commit_block, 1500)}
    for comp, keys in s1.selected.items():
        assert len(keys) <= budget and len(set(keys)) == len(keys)
        pool_comp = {c.key for c in pool if c.competition == comp} & eligible
        assert set(keys) | set(s1.deferred[comp]) == pool_comp
        # Every holder is chosen before any non-holder.
        weights = {c.key: c.weight for c in pool}
        holders = sorted((k for k in pool_comp if weights[k] > 0), key=lambda k: (-weights[k], k))
        assert list(keys[: min(budget, len(holders))]) == holders[:budget]
