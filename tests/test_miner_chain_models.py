"""The incumbent a miner benchmarks against is the model the chain pays, on both chain adapters.

On a real chain `--incumbent chain` used to pick the newest commitment: the bittensor adapter
exposed no incentive and the miner guessed with getattr. Now both adapters say who holds the
weight (`Chain.weight_holders`), and with several competitions each has its own weight holder.
"""

from __future__ import annotations

import base64
import hashlib

import pytest

from subnet.chain.keys import create_wallet
from subnet.competitions import get_competition
from subnet.hub.model_ref import ModelRef
from subnet.miner.chain_models import ranked_candidates
from tests.test_chain_contract import FakeSubtensorHarness, LocalHarness

TINY = get_competition("tiny")


class _Other:
    id = "b3"


@pytest.fixture(scope="module")
def wallets(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("wallets")
    return {name: create_wallet(root, name) for name in ("validator", "alice", "bob", "carol")}


@pytest.fixture(autouse=True)
def _sdk_cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("BTCLI_TOKEN_SYMBOLS_CACHE", str(tmp_path / "token_symbols.json"))


@pytest.fixture(params=[LocalHarness, FakeSubtensorHarness], ids=["local", "bittensor"])
def harness(request, tmp_path):
    h = request.param(tmp_path, commit_reveal=False)
    yield h
    h.close()


def ref_for(name: str, competition: str) -> str:
    digest = base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()
    return ModelRef(name, "model", "abcdef0", digest, competition).encode()


def test_the_incumbent_is_the_weight_holder_among_its_competitions_commitments(harness, wallets):
    harness.register(wallets["validator"], stake=100.0, permit=True)
    uid = {name: harness.register(wallets[name]) for name in ("alice", "bob", "carol")}
    for name, competition in (("alice", "b3"), ("bob", "tiny"), ("carol", "tiny")):
        harness.chain(wallets[name]).commit(ref_for(name, competition))
        harness.advance(2)  # carol's is the newest commitment
    reader = harness.chain()

    def order(competition) -> list[str]:
        return [c.ref.namespace for c in ranked_candidates(reader, competition)]

    assert order(TINY) == ["carol", "bob"]  # nobody paid yet: newest first
    validator = harness.chain(wallets["validator"])
    assert validator.set_weights([uid["alice"], uid["bob"], uid["carol"]], [0.6, 0.3, 0.1], version_key=1).success
    harness.run_epoch()
    assert order(TINY) == ["bob", "carol"]  # bob holds tiny's weight, though carol committed later
    assert order(_Other()) == ["alice"]  # b3's weight holder is its own
    [best] = ranked_candidates(reader, TINY, exclude_hotkeys={wallets["bob"].hotkey.ss58_address})
    assert best.ref.namespace == "carol" and best.uid == uid["carol"]
