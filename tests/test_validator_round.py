"""Pure steps of a round: parsing commitments, mapping weights to uids, smoothing."""

from __future__ import annotations

import base64
import hashlib
import math

import pytest

from subnet.chain.base import Commitment, Metagraph, Neuron
from subnet.competitions import DEFAULT_COMPETITIONS, Competition
from subnet.hub.model_ref import ModelRef
from subnet.validator.round import ChainSnapshot, parse_commitments, seed_block
from subnet.validator.weighting import uid_weights


def _neuron(uid, hotkey):
    return Neuron(uid=uid, hotkey=hotkey, coldkey="c", stake=0.0, validator_permit=False)


def _ref(name, competition="tiny"):
    h = base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()
    return ModelRef("ns", name, "abcdef1", h, competition).encode()


def test_parse_keeps_reasons_and_ignores_unregistered_hotkeys():
    mg = Metagraph(1, 500, (_neuron(0, "a"), _neuron(1, "b"), _neuron(2, "c")))
    snap = ChainSnapshot(500, mg, (
        Commitment("a", 10, _ref("good")),
        Commitment("b", 11, "garbage"),
        Commitment("c", 12, _ref("other", "nope")),
        Commitment("ghost", 13, _ref("ghost")),
    ))
    parsed = {p.hotkey: p for p in parse_commitments(snap, DEFAULT_COMPETITIONS)}
    assert set(parsed) == {"a", "b", "c"}
    assert parsed["a"].ref.name == "good" and parsed["a"].uid == 0 and parsed["a"].error is None
    assert parsed["b"].ref is None and "5" in parsed["b"].error
    assert "unknown competition" in parsed["c"].error


def test_uid_weights_scale_by_reward_share_and_skip_unknown_hotkeys():
    tiny = DEFAULT_COMPETITIONS["tiny"]
    comps = {
        "x": Competition(**{**tiny.to_dict(), "id": "x", "architectures": tiny.architectures,
                            "advantage": tiny.advantage, "sampling": tiny.sampling, "reward_share": 0.75}),
        "y": Competition(**{**tiny.to_dict(), "id": "y", "architectures": tiny.architectures,
                            "advantage": tiny.advantage, "sampling": tiny.sampling, "reward_share": 0.25}),
    }
    mg = Metagraph(1, 0, (_neuron(3, "a"), _neuron(5, "b"), _neuron(7, "c")))
    ema = {"x": {"a": 2.0, "b": 2.0, "gone": 5.0}, "y": {"c": 1.0, "nan": math.nan}, "z": {"a": 1.0}}
    uids, weights = uid_weights(ema, mg, comps)
    got = dict(zip(uids, weights))
    assert uids == [3, 5, 7]
    # 'gone' is deregistered: x's share goes to a and b; NaN and unknown competitions count for nothing.
    assert got[3] == pytest.approx(got[5]) and got[7] / got[3] == pytest.approx(0.25 / 0.375)
    assert sum(weights) == pytest.approx(1.0)


def test_uid_weights_all_zero_when_nothing_earned():
    mg = Metagraph(1, 0, (_neuron(0, "a"),))
    assert uid_weights({"tiny": {}}, mg, DEFAULT_COMPETITIONS) == ([], [])


def test_seed_block_is_shared_within_a_window():
    assert seed_block(149, 150) == 0 and seed_block(150, 150) == 150 and seed_block(299, 150) == 150


def test_cli_reports_bad_flags_and_reads_environment(monkeypatch, capsys):
    from subnet.commands.validator_commands import run_from_argv

    assert run_from_argv(["--store", "s3://bucket"]) == 2
    assert "--store must be 'hf' or 'local:DIR'" in capsys.readouterr().err
    monkeypatch.setenv("SUBNET_NETUID", "not-a-number")
    assert run_from_argv([]) == 2
    assert "SUBNET_NETUID" in capsys.readouterr().err
