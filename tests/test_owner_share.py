"""The owner share: a scheduled hotkey or uid gets a fixed share, competitions split the rest; an owner
that is not registered hands its share back to the competitions."""

from __future__ import annotations

import logging

import pytest

from subnet.chain.base import Metagraph, Neuron
from subnet.competitions import DEFAULT_COMPETITIONS
from subnet.schedule import ScheduleEntry
from subnet.validator.weighting import with_owner_share

METAGRAPH = Metagraph(1, 10_000, tuple(
    Neuron(uid=u, hotkey=hk, coldkey="c", stake=0.0, validator_permit=False)
    for u, hk in enumerate(("owner", "a", "b"))
))
TINY = {"tiny": DEFAULT_COMPETITIONS["tiny"]}


def test_owner_hotkey_gets_its_share_and_the_rest_is_scaled():
    entry = ScheduleEntry(0, TINY, owner="owner", owner_share=0.2)
    uids, weights = with_owner_share([1, 2], [0.75, 0.25], METAGRAPH, entry)
    assert dict(zip(uids, weights)) == pytest.approx({0: 0.2, 1: 0.6, 2: 0.2})


def test_owner_by_uid_adds_to_a_uid_that_also_earned():
    entry = ScheduleEntry(0, TINY, owner="uid:1", owner_share=0.1)
    uids, weights = with_owner_share([1, 2], [0.5, 0.5], METAGRAPH, entry)
    assert dict(zip(uids, weights)) == pytest.approx({1: 0.55, 2: 0.45})


def test_unregistered_owner_hands_its_share_back_and_says_so(caplog):
    for owner in ("gone", "uid:7"):
        entry = ScheduleEntry(0, TINY, owner=owner, owner_share=0.3)
        with caplog.at_level(logging.WARNING):
            uids, weights = with_owner_share([1, 2], [0.75, 0.25], METAGRAPH, entry)
        assert dict(zip(uids, weights)) == pytest.approx({1: 0.75, 2: 0.25})
        assert "not registered" in caplog.text


def test_no_winner_anywhere_sets_nothing_for_the_owner_alone():
    entry = ScheduleEntry(0, TINY, owner="owner", owner_share=0.2)
    assert with_owner_share([1], [0.0], METAGRAPH, entry) == ([1], [0.0])
    assert with_owner_share([1], [1.0], METAGRAPH, None) == ([1], [1.0])
