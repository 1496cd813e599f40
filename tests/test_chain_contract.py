"""One contract, two chains: LocalChain on a SQLite file, and BittensorChain running the real
bittensor SDK over an in-memory substrate (tests/fakes/substrate.py), each with commit-reveal
weights on (the runtime's default on new subnets) and off, and with the runtime's default
MinAllowedWeights (1024). The validator and miner see only the `Chain` protocol, so all must
behave the same way on everything below."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from subnet.chain.base import Chain, ChainError
from subnet.chain.keys import create_wallet

HASH_RE = re.compile(r"^0x[0-9a-f]{64}$")
RATE_LIMIT = 10


@pytest.fixture(scope="module")
def wallets(tmp_path_factory) -> dict:
    """Real sr25519 wallets, made once (key generation is the slow part)."""
    root = tmp_path_factory.mktemp("wallets")
    return {name: create_wallet(root, name) for name in ("validator", "miner", "stranger")}


@pytest.fixture(autouse=True)
def _sdk_cache_in_tmp(tmp_path, monkeypatch):
    # The SDK caches token symbols on disk on connect; keep that out of the home directory.
    monkeypatch.setenv("BTCLI_TOKEN_SYMBOLS_CACHE", str(tmp_path / "token_symbols.json"))


MIN_ALLOWED_WEIGHTS = 1024  # the runtime's default
REVEAL_PERIOD = 5  # LocalChain blocks from a commit to its reveal


class LocalHarness:
    name = "local"

    def __init__(self, tmp_path: Path, commit_reveal: bool) -> None:
        from subnet.chain.local import LocalChain

        self._cls = LocalChain
        self.commit_reveal = commit_reveal
        self.path = tmp_path / "chain.sqlite"
        # A long block time: blocks move only when a test advances them.
        self.admin = LocalChain(self.path, netuid=3, block_time=1000.0)
        self.admin.advance(500)
        self.admin.set_weights_rate_limit(RATE_LIMIT)
        self.admin.set_min_allowed_weights(MIN_ALLOWED_WEIGHTS)
        self.admin.set_commit_reveal(commit_reveal, REVEAL_PERIOD)
        self.handles = [self.admin]

    def chain(self, wallet=None) -> Chain:
        handle = self._cls(self.path, netuid=3, wallet=wallet, block_time=1000.0)
        self.handles.append(handle)
        return handle

    def register(self, wallet, stake: float = 0.0, permit: bool = False) -> int:
        return self.admin.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address, stake, permit)

    def register_address(self, hotkey: str) -> int:
        return self.admin.register(hotkey, hotkey)

    def set_min_allowed_weights(self, count: int) -> None:
        self.admin.set_min_allowed_weights(count)

    def applied_weights(self, wallet) -> dict[int, float]:
        """What the chain applies (revealed weights), normalised to sum 1."""
        return self.admin.weights_of(wallet.hotkey.ss58_address)

    def advance(self, blocks: int) -> None:
        self.admin.advance(blocks)

    def run_epoch(self) -> None:
        """The local chain runs Yuma at every read: nothing to do."""

    def close(self) -> None:
        for h in self.handles:
            h.close()


class FakeSubtensorHarness:
    name = "bittensor"

    def __init__(self, tmp_path: Path, commit_reveal: bool) -> None:
        from tests.fakes.substrate import FakeChainState, FakeSubstrate

        self.commit_reveal = commit_reveal
        self.state = FakeChainState(block=500)
        self.subnet = self.state.add_subnet(3, weights_rate_limit=RATE_LIMIT, commit_reveal=commit_reveal,
                                            min_allowed_weights=MIN_ALLOWED_WEIGHTS)
        self._substrate = FakeSubstrate
        self.handles = []

    def chain(self, wallet=None) -> Chain:
        from subnet.chain.bittensor import BittensorChain

        handle = BittensorChain("local", 3, wallet=wallet, timeout_s=10,
                                substrate=lambda: self._substrate(self.state))
        self.handles.append(handle)
        return handle

    def register(self, wallet, stake: float = 0.0, permit: bool = False) -> int:
        return self.state.register(3, wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address, stake, permit)

    def register_address(self, hotkey: str) -> int:
        return self.state.register(3, hotkey)

    def set_min_allowed_weights(self, count: int) -> None:
        self.subnet.min_allowed_weights = count

    def applied_weights(self, wallet) -> dict[int, float]:
        """What the chain applies: plaintext weights at once; commits only at a drand reveal, which
        the fake never has (see tests/fakes/subtensor_state.py)."""
        stored = self.subnet.weights.get(self.subnet.uid_of(wallet.hotkey.ss58_address), [])
        total = sum(v for _, v in stored)
        return {uid: v / total for uid, v in stored}

    def advance(self, blocks: int) -> None:
        self.state.advance(blocks)

    def run_epoch(self) -> None:
        """The runtime's epoch over the weights it applied (plaintext ones: the fake never reveals a
        commit), stored as the runtime stores incentive and consensus: PerU16."""
        import numpy as np

        from subnet.scoring.yuma import yuma
        from tests.fakes.subtensor_state import U16_MAX

        neurons = self.subnet.neurons
        w = np.zeros((len(neurons), len(neurons)))
        for uid, pairs in self.subnet.weights.items():
            for dest, value in pairs:
                w[uid, dest] = value
        r = yuma([n.stake_rao for n in neurons], w, [n.validator_permit for n in neurons])
        for uid, n in enumerate(neurons):
            n.incentive_u16 = round(float(r.incentive[uid]) * U16_MAX)
            n.consensus_u16 = round(float(r.consensus[uid]) * U16_MAX)

    def close(self) -> None:
        for h in self.handles:
            h.close()


@pytest.fixture(params=[(LocalHarness, True), (LocalHarness, False), (FakeSubtensorHarness, True),
                        (FakeSubtensorHarness, False)],
                ids=["local-commit-reveal", "local", "bittensor-commit-reveal", "bittensor"])
def harness(request, tmp_path):
    cls, commit_reveal = request.param
    h = cls(tmp_path, commit_reveal)
    yield h
    h.close()


def test_both_implement_the_protocol(harness):
    assert isinstance(harness.chain(), Chain)


def test_blocks_advance(harness):
    chain = harness.chain()
    before = chain.current_block()
    harness.advance(7)
    assert chain.current_block() == before + 7


def test_block_hash_is_deterministic_hex_and_distinct(harness):
    a, b = harness.chain(), harness.chain()
    block = a.current_block() - 3
    assert HASH_RE.match(a.block_hash(block))
    assert a.block_hash(block) == b.block_hash(block) == a.block_hash(block)
    assert a.block_hash(block) != a.block_hash(block - 1)


def test_block_hash_of_future_block_is_an_error(harness):
    chain = harness.chain()
    with pytest.raises(ChainError):
        chain.block_hash(chain.current_block() + 1000)


def test_metagraph_lists_registered_neurons(harness, wallets):
    v = harness.register(wallets["validator"], stake=250.0, permit=True)
    m = harness.register(wallets["miner"])
    assert harness.register(wallets["miner"]) == m  # registering twice keeps the uid
    graph = harness.chain().metagraph()
    assert graph.netuid == 3
    assert graph.block == harness.chain().current_block()
    assert graph.uid_of(wallets["validator"].hotkey.ss58_address) == v
    assert graph.uid_of(wallets["miner"].hotkey.ss58_address) == m
    assert graph.uid_of(wallets["stranger"].hotkey.ss58_address) is None
    validator = graph.neurons[v]
    assert validator.coldkey == wallets["validator"].coldkeypub.ss58_address
    assert validator.validator_permit and not graph.neurons[m].validator_permit
    assert math.isclose(validator.stake, 250.0)


def test_commit_shows_up_with_its_block(harness, wallets):
    harness.register(wallets["miner"])
    miner = harness.chain(wallets["miner"])
    reader = harness.chain()
    block = miner.commit("alice:model:abcdef0:hash:b3")
    assert block <= reader.current_block()
    [c] = reader.commitments()
    assert (c.hotkey, c.block, c.data) == (wallets["miner"].hotkey.ss58_address, block, "alice:model:abcdef0:hash:b3")


def test_newer_commit_replaces_the_older_one(harness, wallets):
    harness.register(wallets["miner"])
    miner = harness.chain(wallets["miner"])
    first = miner.commit("first")
    harness.advance(3)
    second = miner.commit("second")
    assert second > first
    assert [(c.data, c.block) for c in harness.chain().commitments()] == [("second", second)]


def test_commit_accepts_128_bytes_and_refuses_129(harness, wallets):
    harness.register(wallets["miner"])
    miner = harness.chain(wallets["miner"])
    with pytest.raises(ChainError) as e:
        miner.commit("é" * 64 + "x")  # 129 bytes of UTF-8, 65 characters
    assert e.value.code == "too_long"
    miner.commit("é" * 64)
    assert harness.chain().commitments()[0].data == "é" * 64


def test_commit_needs_a_wallet_and_a_registered_hotkey(harness, wallets):
    with pytest.raises(ChainError) as e:
        harness.chain().commit("x")
    assert e.value.code == "no_wallet"
    with pytest.raises(ChainError) as e:
        harness.chain(wallets["stranger"]).commit("x")
    assert e.value.code == "not_registered"
    assert harness.chain().commitments() == []


def test_weights_succeed_then_are_rate_limited_until_the_limit_passes(harness, wallets):
    v = harness.register(wallets["validator"], stake=100.0, permit=True)
    m = harness.register(wallets["miner"])
    validator = harness.chain(wallets["validator"])
    assert validator.weights_rate_limit() == RATE_LIMIT
    first = validator.set_weights([v, m], [0.25, 0.75], version_key=1)
    assert first.success and first.code == "" and first.block is not None
    assert first.committed == harness.commit_reveal and (first.reveal_round is not None) == harness.commit_reveal
    assert harness.chain().metagraph().neurons[v].last_update == first.block
    harness.advance(RATE_LIMIT - 2)
    again = validator.set_weights([m], [1.0], version_key=1)
    assert not again.success and again.code == "rate_limited"
    harness.advance(2)
    later = validator.set_weights([m], [1.0], version_key=1)
    assert later.success, later


def test_rate_limit_survives_a_restart(harness, wallets):
    """A validator restarted mid-window is still refused: the limit lives on the chain."""
    v = harness.register(wallets["validator"], permit=True)
    assert harness.chain(wallets["validator"]).set_weights([v], [1.0], 1).success
    restarted = harness.chain(wallets["validator"])
    result = restarted.set_weights([v], [1.0], 1)
    assert not result.success and result.code == "rate_limited"


def test_weights_refusals_carry_codes(harness, wallets):
    v = harness.register(wallets["validator"], permit=True)
    assert harness.chain().set_weights([v], [1.0], 1).code == "no_wallet"
    assert harness.chain(wallets["stranger"]).set_weights([v], [1.0], 1).code == "not_registered"
    validator = harness.chain(wallets["validator"])
    for uids, weights in (([v], [1.0, 2.0]), ([v], [math.nan]), ([v], [-1.0]), ([v], [0.0])):
        result = validator.set_weights(uids, weights, 1)
        assert not result.success and result.code == "invalid_weights", (uids, weights, result)


def test_a_commit_is_not_weights_until_revealed(harness, wallets):
    v = harness.register(wallets["validator"], permit=True)
    m = harness.register(wallets["miner"])
    result = harness.chain(wallets["validator"]).set_weights([v, m], [0.25, 0.75], version_key=1)
    assert result.success
    applied = harness.applied_weights(wallets["validator"])
    if harness.commit_reveal:
        assert applied == {}  # committed: nothing the chain applies yet
        assert "committed" in result.message
    else:
        assert applied[m] > applied[v] > 0


@pytest.mark.parametrize("min_allowed", [1024, 8])
def test_weights_meet_the_minimum_count_without_changing_the_ranking(harness, wallets, min_allowed):
    """On a 4-uid subnet the runtime wants min(4, MinAllowedWeights) = 4 entries, zeros included;
    a softmax leaves most weights at u16 zero. Missing uids get the smallest positive u16."""
    harness.set_min_allowed_weights(min_allowed)
    v = harness.register(wallets["validator"], permit=True)
    m = harness.register(wallets["miner"])
    others = [harness.register_address(f"5Other{i}") for i in range(2)]
    validator = harness.chain(wallets["validator"])
    result = validator.set_weights([m, v, others[0]], [1.0, 1e-9, 0.0], version_key=1)
    assert result.success, result
    if harness.commit_reveal:
        harness.advance(REVEAL_PERIOD)
        if harness.name == "bittensor":
            return  # the ciphertext is opaque; tests/test_chain_bittensor.py checks what was encrypted
    applied = harness.applied_weights(wallets["validator"])
    assert set(applied) == {v, m, *others}
    assert applied[m] == max(applied.values()) and applied[m] > 0.999
    assert applied[v] == applied[others[0]] == applied[others[1]] > 0  # the floor, tied, below the winner


def test_weight_holders_are_the_hotkeys_the_epoch_pays(harness, wallets):
    """Who holds the weight is what the chain's consensus pays, not who committed last: committed
    weights pay nobody until revealed, applied ones pay each miner its share."""
    harness.register(wallets["validator"], stake=100.0, permit=True)
    a = harness.register(wallets["miner"])
    b = harness.register_address("5OtherMiner")
    reader = harness.chain()
    assert reader.weight_holders() == {}  # no epoch has paid anyone
    assert harness.chain(wallets["validator"]).set_weights([a, b], [0.75, 0.25], version_key=1).success
    harness.run_epoch()
    if harness.commit_reveal:
        assert reader.weight_holders() == {}  # a commit is not weights (the fake never reveals)
        if harness.name == "bittensor":
            return
        harness.advance(REVEAL_PERIOD)
        harness.run_epoch()
    holders = reader.weight_holders()
    assert set(holders) == {wallets["miner"].hotkey.ss58_address, "5OtherMiner"}
    assert holders[wallets["miner"].hotkey.ss58_address] == pytest.approx(0.75, abs=1e-4)
    assert holders["5OtherMiner"] == pytest.approx(0.25, abs=1e-4)
