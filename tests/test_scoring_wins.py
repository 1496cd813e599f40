"""Every model against every other: order by birth, copies, failures, win rates, order independence."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subnet.competitions import AdvantageSchedule
from subnet.scoring.wins import Candidate, compute_wins

DEFAULT = AdvantageSchedule()
DAY = 7_200
N_DOCS = 400


def difficulty(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(0.76, 0.18, N_DOCS)


def model(key: str, block: int, factor: float, seed: int, content_hash: str | None = None, base=None) -> Candidate:
    """A model whose loss is `factor` times the shared document difficulty plus its own small noise."""
    base = difficulty() if base is None else base
    noise = np.random.default_rng(seed).normal(0, 0.002, base.size)
    return Candidate(key, block, factor * base + noise, content_hash)


def test_better_later_models_win_in_a_chain():
    old, mid, new = model("old", 100, 1.0, 1), model("mid", 200, 0.97, 2), model("new", 300, 0.94, 3)
    r = compute_wins([old, mid, new], current_block=400, schedule=DEFAULT)
    assert r.wins == {"old": 0, "mid": 1, "new": 2}
    assert r.win_rates == {"old": 0.0, "mid": 0.5, "new": 1.0}
    assert set(r.comparisons) == {("old", "mid"), ("old", "new"), ("mid", "new")}
    assert all(c.later_wins for c in r.comparisons.values())
    assert r.copies == {} and r.failed == {}


def test_a_slightly_better_newcomer_waits_for_the_advantage_to_decay():
    incumbent = model("incumbent", 1_000, 1.0, 1)
    newcomer = model("newcomer", 1_000 + DAY, 0.997, 2)
    early = compute_wins([incumbent, newcomer], current_block=1_000 + DAY, schedule=DEFAULT)
    assert early.win_rates == {"incumbent": 1.0, "newcomer": 0.0}
    late = compute_wins([incumbent, newcomer], current_block=1_000 + 21 * DAY, schedule=DEFAULT)
    assert late.win_rates == {"incumbent": 0.0, "newcomer": 1.0}
    assert late.comparisons[("incumbent", "newcomer")].eps == pytest.approx(0.004 * 0.5**3)


def test_a_lone_valid_model_has_win_rate_one():
    r = compute_wins([model("solo", 10, 1.0, 1)], current_block=20, schedule=DEFAULT)
    assert r.win_rates == {"solo": 1.0} and r.wins == {"solo": 0} and r.comparisons == {}


def test_no_candidates():
    r = compute_wins([], current_block=1, schedule=DEFAULT)
    assert (r.win_rates, r.wins, r.comparisons, r.copies, r.failed) == ({}, {}, {}, {}, {})


# ----------------------------------------------------------------------------- copies


def test_only_the_earliest_of_identical_content_counts():
    original = model("original", 100, 1.0, 1, content_hash="h1")
    copy = model("copycat", 200, 1.0, 1, content_hash="h1")
    better_copy = model("tuned", 300, 0.9, 2, content_hash="h1")  # same hash: a copy however it scores
    other = model("other", 150, 1.02, 3, content_hash="h2")
    r = compute_wins([copy, better_copy, original, other], current_block=400, schedule=DEFAULT)
    assert r.copies == {"copycat": "original", "tuned": "original"}
    assert r.win_rates["copycat"] == r.win_rates["tuned"] == 0.0
    assert r.wins["copycat"] == r.wins["tuned"] == 0
    assert r.win_rates == {"original": 1.0, "other": 0.0, "copycat": 0.0, "tuned": 0.0}
    assert set(r.comparisons) == {("original", "other")}


def test_copies_at_the_same_block_go_to_the_lexicographically_first_key():
    a = model("b-first-by-name?", 100, 1.0, 1, content_hash="h")
    b = model("a-first-by-name", 100, 1.0, 1, content_hash="h")
    r = compute_wins([a, b], current_block=200, schedule=DEFAULT)
    assert r.copies == {"b-first-by-name?": "a-first-by-name"}
    assert r.win_rates["a-first-by-name"] == 1.0


def test_none_content_hashes_are_never_copies():
    r = compute_wins([model("a", 1, 1.0, 1), model("b", 2, 1.0, 1)], current_block=3, schedule=DEFAULT)
    assert r.copies == {}
    assert r.win_rates == {"a": 1.0, "b": 0.0}  # identical losses: the earlier keeps the pair


# ----------------------------------------------------------------------------- failures


def test_failed_models_are_not_compared_and_get_nothing():
    good = model("good", 300, 1.0, 1)
    all_nan = Candidate("nan", 100, np.full(N_DOCS, np.nan))
    empty = Candidate("empty", 200, np.array([]))
    infinite = Candidate("inf", 50, np.full(N_DOCS, np.inf))
    r = compute_wins([good, all_nan, empty, infinite], current_block=400, schedule=DEFAULT)
    assert set(r.failed) == {"nan", "empty", "inf"}
    assert "no documents" in r.failed["empty"] and f"all {N_DOCS} documents failed" in r.failed["nan"]
    assert r.win_rates == {"good": 1.0, "nan": 0.0, "empty": 0.0, "inf": 0.0}
    assert r.comparisons == {}


def test_a_copy_that_also_failed_is_reported_as_a_copy():
    original = model("original", 100, 1.0, 1, content_hash="h")
    broken_copy = Candidate("broken", 200, np.full(N_DOCS, np.nan), "h")
    r = compute_wins([original, broken_copy], current_block=300, schedule=DEFAULT)
    assert r.copies == {"broken": "original"} and r.failed == {}


def test_one_failed_document_loses_to_every_model_without_failures():
    flaky = model("flaky", 500, 0.8, 1)  # far better, and latest
    flaky.losses[123] = np.nan
    others = [model("a", 100, 1.0, 2), model("b", 200, 1.01, 3)]
    r = compute_wins([flaky, *others], current_block=600, schedule=DEFAULT)
    assert r.win_rates["flaky"] == 0.0
    assert r.failed == {}
    assert r.comparisons[("a", "flaky")].later_failed == 1


# ----------------------------------------------------------------------------- determinism


def test_same_block_ties_are_broken_by_key():
    x = model("x", 100, 1.0, 1)
    y = model("y", 100, 1.0, 1)
    for order in ([x, y], [y, x]):
        r = compute_wins(order, current_block=200, schedule=DEFAULT)
        assert list(r.comparisons) == [("x", "y")]
        assert r.win_rates == {"x": 1.0, "y": 0.0}


def test_current_block_before_a_commit_counts_as_age_zero():
    r = compute_wins([model("a", 500, 1.0, 1), model("b", 600, 0.9, 2)], current_block=100, schedule=DEFAULT)
    assert r.comparisons[("a", "b")].eps == DEFAULT.eps0


def candidate_sets():
    """Up to six models with shared difficulty, clashing blocks, shared hashes and failures."""
    base = difficulty(7)

    def build(specs):
        out = []
        for i, (block, factor, hash_id, broken) in enumerate(specs):
            content_hash = None if hash_id is None else f"h{hash_id}"
            c = model(f"hk{i}", block, factor, seed=i, content_hash=content_hash, base=base)
            if broken == 1:
                c.losses[i] = np.nan
            elif broken == 2:
                c.losses[:] = np.nan
            out.append(c)
        return out

    spec = st.tuples(
        st.integers(0, 4).map(lambda b: 100 * b),
        st.sampled_from([0.95, 0.98, 0.997, 1.0, 1.0, 1.02]),
        st.one_of(st.none(), st.integers(0, 2)),
        st.sampled_from([0, 0, 0, 1, 2]),
    )
    return st.lists(spec, min_size=1, max_size=6).map(build)


@settings(max_examples=100, deadline=None)
@given(candidate_sets(), st.randoms(use_true_random=False), st.integers(0, 40 * DAY))
def test_permuting_the_candidates_changes_nothing(candidates, rnd, current_block):
    shuffled = list(candidates)
    rnd.shuffle(shuffled)
    a = compute_wins(candidates, current_block, DEFAULT)
    b = compute_wins(shuffled, current_block, DEFAULT)
    assert a.win_rates == b.win_rates and a.wins == b.wins
    assert a.copies == b.copies and a.failed == b.failed
    assert {k: v.later_wins for k, v in a.comparisons.items()} == {k: v.later_wins for k, v in b.comparisons.items()}

    keys = {c.key for c in candidates}
    assert set(a.win_rates) == keys
    assert all(0.0 <= r <= 1.0 and math.isfinite(r) for r in a.win_rates.values())
    assert sum(a.wins.values()) == len(a.comparisons)
    for copy in a.copies:
        assert a.win_rates[copy] == 0 and all(copy not in pair for pair in a.comparisons)
    for earlier, later in a.comparisons:
        e = next(c for c in candidates if c.key == earlier)
        lt = next(c for c in candidates if c.key == later)
        assert (e.block, e.key) < (lt.block, lt.key)


# ----------------------------------------------------------------------------- bad input


def test_duplicate_keys_are_refused():
    with pytest.raises(ValueError, match="duplicate candidate key 'a'"):
        compute_wins([model("a", 1, 1.0, 1), model("a", 2, 1.0, 2)], current_block=3, schedule=DEFAULT)


def test_different_document_counts_are_refused_naming_the_models():
    short = Candidate("short", 2, np.ones(10))
    with pytest.raises(ValueError, match="'short': 10"):
        compute_wins([model("a", 1, 1.0, 1), short], current_block=3, schedule=DEFAULT)


def test_candidate_needs_a_key_and_one_dimensional_losses():
    with pytest.raises(ValueError, match="key"):
        Candidate("", 1, np.ones(3))
    with pytest.raises(ValueError, match="'k': losses must be 1-D"):
        Candidate("k", 1, np.ones((2, 3)))
