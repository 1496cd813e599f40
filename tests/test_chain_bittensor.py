"""BittensorChain over the real bittensor SDK, with only the transport faked (tests/fakes/substrate.py):
local rate-limit refusals, reconnection after a dropped websocket, timeouts, chain-side
rejections, encrypted hotkeys, and the network factory. The fixture subnet runs commit-reveal
weights, as new subnets do; tests about plaintext weights turn it off."""

from __future__ import annotations

import time

import bittensor as bt
import pytest

from subnet.chain.base import ChainError
from subnet.chain.bittensor import BittensorChain
from subnet.chain.factory import make_chain
from subnet.chain.keys import create_wallet
from subnet.chain.local import LocalChain
from tests.fakes.substrate import FakeChainState, FakeSubstrate

NETUID = 2


@pytest.fixture(scope="module")
def wallets(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("wallets")
    return {name: create_wallet(root, name) for name in ("validator", "miner")}


@pytest.fixture(autouse=True)
def _sdk_cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("BTCLI_TOKEN_SYMBOLS_CACHE", str(tmp_path / "token_symbols.json"))
    monkeypatch.delenv("BT_WALLET_PASSWORD", raising=False)


@pytest.fixture
def state(wallets) -> FakeChainState:
    s = FakeChainState(block=2000)
    s.add_subnet(NETUID, weights_rate_limit=20)
    for name, stake, permit in (("validator", 500.0, True), ("miner", 1.0, False)):
        w = wallets[name]
        s.register(NETUID, w.hotkey.ss58_address, w.coldkeypub.ss58_address, stake, permit)
    return s


@pytest.fixture
def open_chain(state):
    handles = []

    def make(wallet=None, timeout_s: float = 10, **kw) -> BittensorChain:
        chain = BittensorChain("local", NETUID, wallet=wallet, timeout_s=timeout_s,
                               substrate=kw.pop("substrate", lambda: FakeSubstrate(state)), **kw)
        handles.append(chain)
        return chain

    yield make
    for h in handles:
        h.close()


def submitted(state: FakeChainState, function: str) -> list[dict]:
    return [e for e in state.extrinsics if e["function"] == function]


def plaintext(state: FakeChainState) -> FakeChainState:
    state.subnets[NETUID].commit_reveal = False
    return state


def test_weights_go_through_the_sdk_quantised_and_signed_by_the_hotkey(open_chain, state, wallets):
    plaintext(state)
    result = open_chain(wallets["validator"]).set_weights([0, 1], [1.0, 3.0], version_key=7)
    assert result.success and result.block == state.block
    [extrinsic] = submitted(state, "set_mechanism_weights")
    assert extrinsic["signer"] == wallets["validator"].hotkey.ss58_address
    assert extrinsic["params"]["dests"] == [0, 1]
    assert extrinsic["params"]["weights"] == [21845, 65535]  # the SDK's max-upscaled u16s
    assert extrinsic["params"]["version_key"] == 7


def test_rate_limit_is_refused_locally_without_submitting(open_chain, state, wallets):
    plaintext(state)
    validator = open_chain(wallets["validator"])
    assert validator.set_weights([1], [1.0], 1).success
    submits = state.calls["submit"]
    refused = validator.set_weights([1], [1.0], 1)
    assert (refused.success, refused.code) == (False, "rate_limited")
    assert "retry in" in refused.message
    assert state.calls["submit"] == submits  # nothing reached the chain
    state.advance(20)
    assert validator.set_weights([1], [1.0], 1).success


def test_rate_limit_is_read_from_the_chain(open_chain, state, wallets):
    validator = open_chain(wallets["validator"])
    assert validator.weights_rate_limit() == 20
    state.subnets[NETUID].weights_rate_limit = 3
    assert validator.weights_rate_limit() == 3


def test_chain_side_rejection_becomes_a_failed_result(open_chain, state, wallets):
    plaintext(state)
    state.subnets[NETUID].weights_version_key = 100  # not preflighted by the SDK: the chain refuses
    result = open_chain(wallets["validator"]).set_weights([1], [1.0], version_key=1)
    assert not result.success and result.code == "invalid_argument"
    assert "version" in result.message
    assert submitted(state, "set_mechanism_weights")[0]["error"] == "IncorrectWeightVersionKey"


def test_a_dropped_connection_is_replaced_once(open_chain, state, wallets):
    reader = open_chain()
    assert reader.current_block() == 2000
    opened = state.connections
    state.drop_connections(1)
    assert len(reader.metagraph().neurons) == 2
    assert state.connections == opened + 1


def test_the_metagraph_carries_the_epochs_consensus_and_incentive(open_chain, state, wallets):
    miner = wallets["miner"].hotkey.ss58_address
    neuron = next(n for n in state.subnets[NETUID].neurons if n.hotkey == miner)
    neuron.consensus_u16, neuron.incentive_u16 = 65535, 49151  # PerU16, as the runtime stores them
    graph = open_chain().metagraph()
    by_hotkey = {n.hotkey: n for n in graph.neurons}
    assert by_hotkey[miner].consensus == pytest.approx(1.0)
    assert by_hotkey[miner].incentive == pytest.approx(49151 / 65535)
    assert graph.incentive_by_hotkey() == {miner: pytest.approx(49151 / 65535)}
    assert graph.consensus_by_uid()[by_hotkey[miner].uid] == pytest.approx(1.0)


def test_a_drop_before_submission_does_not_lose_the_weights(open_chain, state, wallets):
    validator = open_chain(wallets["validator"])
    validator.current_block()
    state.drop_connections(1)
    assert validator.set_weights([1], [1.0], 1).success
    assert len(submitted(state, "commit_timelocked_mechanism_weights")) == 1


def test_a_connection_that_keeps_failing_is_an_error_not_a_loop(open_chain, state, wallets):
    reader = open_chain()
    state.drop_connections(5)
    with pytest.raises(ChainError) as e:
        reader.current_block()
    assert e.value.code == "connection"
    state.clear_faults()
    assert reader.current_block() == 2000  # the handle is still usable once the node is back


def test_a_stalled_read_times_out_and_is_retried(open_chain, state):
    reader = open_chain(timeout_s=0.3)
    state.hang_requests(1)
    started = time.monotonic()
    assert reader.current_block() == 2000
    state.hang_requests(2)
    with pytest.raises(ChainError) as e:
        reader.metagraph()
    assert e.value.code == "timeout"
    assert time.monotonic() - started < 3


def test_commitments_skip_deregistered_hotkeys(open_chain, state, wallets):
    open_chain(wallets["miner"]).commit("mine")
    gone = {"deposit": 0, "block": 5, "info": {"fields": [{"Raw4": "0x676f6e65"}]}}
    state.subnets[NETUID].commitments["5GoneHotkey"] = gone
    assert [c.data for c in open_chain().commitments()] == ["mine"]


def test_commit_lands_in_a_block_and_is_signed_by_the_hotkey(open_chain, state, wallets):
    block = open_chain(wallets["miner"]).commit("ns:name:abcdef0:h:b3")
    [extrinsic] = submitted(state, "set_commitment")
    assert extrinsic["signer"] == wallets["miner"].hotkey.ss58_address and extrinsic["block"] == block
    assert extrinsic["params"]["info"] == {"fields": [{"Raw20": "0x" + b"ns:name:abcdef0:h:b3".hex()}]}


def test_missing_subnet_is_a_clear_error(state):
    chain = BittensorChain("local", 99, timeout_s=5, substrate=FakeSubstrate(state))
    try:
        with pytest.raises(ChainError) as e:
            chain.metagraph()
        assert e.value.code == "subnet_not_exists"
    finally:
        chain.close()


def test_encrypted_hotkey_unlocks_from_the_environment_never_a_prompt(open_chain, state, tmp_path, monkeypatch):
    wallet = bt.Wallet("locked", "default", path=str(tmp_path))
    wallet.create_new_coldkey(use_password=False, suppress=True)
    wallet.create_new_hotkey(use_password=True, hotkey_password="s3cret", suppress=True)
    state.register(NETUID, wallet.hotkeypub.ss58_address, wallet.coldkeypub.ss58_address, validator_permit=True)
    locked = open_chain(bt.Wallet("locked", "default", path=str(tmp_path)))
    result = locked.set_weights([0], [1.0], 1)
    assert (result.success, result.code) == (False, "wallet_locked")
    monkeypatch.setenv("BT_WALLET_PASSWORD", "s3cret")
    assert open_chain(bt.Wallet("locked", "default", path=str(tmp_path))).set_weights([0], [1.0], 1).success


def test_unknown_network_and_bad_timeout_are_refused():
    with pytest.raises(ValueError, match="Unknown network"):
        BittensorChain("nowhere", 1)
    with pytest.raises(ValueError, match="timeout_s"):
        BittensorChain("local", 1, timeout_s=0)


def test_factory_picks_the_adapter(tmp_path):
    LocalChain(tmp_path / "c.sqlite", netuid=4, block_time=2.0).close()  # only `subnet devnet` creates a chain
    local = make_chain(f"devnet:{tmp_path / 'c.sqlite'}", 4)
    assert isinstance(local, LocalChain) and local.netuid == 4 and local.block_time == 2.0
    local.close()
    for network in ("finney", "test", "ws://127.0.0.1:9944"):
        real = make_chain(network, 9)  # construction is cold: no connection is opened
        assert isinstance(real, BittensorChain) and real.netuid == 9
        real.close()
    for bad in ("devnet:", "mainnet", ""):
        with pytest.raises(ValueError):
            make_chain(bad, 1)
