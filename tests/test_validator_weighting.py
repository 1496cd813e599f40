"""Several competitions at once: each competition's winner gets its reward share of the uid weights,
and a competition with nothing to reward hands its share to the others (renormalised pro rata).

Pure functions only, from per-document losses (a window's real statistic and the real decision,
`subnet.scoring.decide`) to the uid weights that go on chain (`uid_weights`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from subnet.chain.base import Metagraph, Neuron
from subnet.competitions import DEFAULT_COMPETITIONS
from subnet.validator.weighting import uid_weights

TINY = DEFAULT_COMPETITIONS["tiny"]
# uid: hotkey. 'v' is the validator; a* compete in 'tiny-a', b* in 'tiny-b', c* in 'tiny-c'.
METAGRAPH = Metagraph(1, 10_000, tuple(
    Neuron(uid=u, hotkey=hk, coldkey="c", stake=0.0, validator_permit=hk == "v")
    for u, hk in enumerate(("v", "a-old", "a-new", "b-old", "b-new", "c-old", "c-new"))
))
REGISTERED = set(METAGRAPH.hotkeys)


def _competitions(**shares: float) -> dict:
    return {cid: dataclasses.replace(TINY, id=cid, reward_share=share) for cid, share in shares.items()}


def _decision(prefix: str, later_loss: float, seed: int) -> dict[str, float]:
    """Two models on one window's 200 documents: '-old' committed at block 100, '-new' at block 5000."""
    from subnet.scoring.decide import Entry, decide
    from subnet.scoring.windows import window_stat

    rng = np.random.default_rng(seed)
    base = rng.normal(3.0, 0.4, size=200)
    stat = window_stat(9_900, base, base * later_loss + rng.normal(0, 0.01, size=200))
    entries = [Entry(f"{prefix}-old", 100, f"{prefix}1", 1), Entry(f"{prefix}-new", 5000, f"{prefix}2", 1)]
    weights = decide(entries, {(f"{prefix}-old", f"{prefix}-new"): [stat]}, TINY.advantage).weights
    return {k: w for k, w in weights.items() if w > 0}


def _uid_weights(ema: dict, competitions: dict) -> dict[int, float]:
    uids, weights = uid_weights(ema, METAGRAPH, competitions)
    assert sum(weights) == pytest.approx(1.0)
    return dict(zip(uids, weights))


def test_two_competitions_split_the_weights_by_reward_share():
    competitions = _competitions(**{"tiny-a": 0.7, "tiny-b": 0.3})
    decided_a = _decision("a", 0.9, seed=1)  # the newcomer is 10% better: it wins
    decided_b = _decision("b", 1.0, seed=2)  # no better: the earlier model keeps the lead
    assert decided_a == {"a-new": 1.0} and decided_b == {"b-old": 1.0}
    ema = {"tiny-a": decided_a, "tiny-b": decided_b}
    got = _uid_weights(ema, competitions)
    assert got[2] == pytest.approx(0.7) and got[3] == pytest.approx(0.3)  # a-new, b-old
    assert got.get(1, 0.0) == pytest.approx(0.0) and got.get(4, 0.0) == pytest.approx(0.0)
    assert 0 not in got  # the validator itself earns nothing


def test_shares_apply_to_each_competitions_normalised_ema():
    """A competition's EMA is normalised before its share applies: a split field gets the same total."""
    competitions = _competitions(**{"tiny-a": 0.7, "tiny-b": 0.3})
    ema = {"tiny-a": {"a-old": 0.5, "a-new": 0.5}, "tiny-b": {"b-old": 10.0}}  # b's EMA not normalised
    assert _uid_weights(ema, competitions) == pytest.approx({1: 0.35, 2: 0.35, 3: 0.3})


def test_a_competition_without_a_valid_model_gives_its_share_to_the_others():
    competitions = _competitions(**{"tiny-a": 0.7, "tiny-b": 0.3})
    # No model of tiny-b was ever scored: its decision holds nothing.
    ema = {"tiny-a": _decision("a", 0.9, seed=1), "tiny-b": {}}
    assert _uid_weights(ema, competitions) == pytest.approx({2: 1.0})
    # With three competitions, the empty one's share is spread pro rata over the other two.
    three = _competitions(**{"tiny-a": 0.5, "tiny-b": 0.3, "tiny-c": 0.2})
    ema = {"tiny-a": {"a-new": 1.0}, "tiny-b": {"b-old": 1.0}, "tiny-c": {}}
    assert _uid_weights(ema, three) == pytest.approx({2: 0.625, 3: 0.375})


def test_a_competition_whose_winner_left_falls_back_to_its_registered_models():
    """A deregistered winner's share stays in its competition, with whoever is still registered."""
    competitions = _competitions(**{"tiny-a": 0.7, "tiny-b": 0.3})
    ema = {"tiny-a": {"a-gone": 0.9, "a-old": 0.1}, "tiny-b": {"b-old": 1.0}}
    assert _uid_weights(ema, competitions) == pytest.approx({1: 0.7, 3: 0.3})
    uids, _ = uid_weights(ema, METAGRAPH, competitions)
    assert set(uids) <= {n.uid for n in METAGRAPH.neurons}
