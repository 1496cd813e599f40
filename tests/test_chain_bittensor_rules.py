"""BittensorChain against the runtime's rules and the real transport's failure modes: commit-reveal
(timelocked commits, version 4), the minimum weight count, permits and stake, commit and quota
limits, RPC policy refusals, runtime/SDK mismatches, lost outcomes, and finalized seed blocks."""

from __future__ import annotations

import bittensor as bt
import bittensor_core
import pytest
from bittensor._transport.errors import StorageFunctionNotFound

from subnet.chain.base import ChainError
from subnet.chain.bittensor import BittensorChain
from subnet.chain.keys import create_wallet
from tests.fakes.substrate import FakeChainState, FakeConnectionDropped, FakeSubstrate, check_call_arguments

NETUID = 2


@pytest.fixture(scope="module")
def wallets(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("wallets")
    return {name: create_wallet(root, name) for name in ("validator", "miner", "weak")}


@pytest.fixture(autouse=True)
def _sdk_cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("BTCLI_TOKEN_SYMBOLS_CACHE", str(tmp_path / "token_symbols.json"))


@pytest.fixture
def state(wallets) -> FakeChainState:
    """A 4-uid subnet with the runtime's defaults: commit-reveal on, MinAllowedWeights 1024."""
    s = FakeChainState(block=5000)
    s.add_subnet(NETUID, weights_rate_limit=20)
    for name, stake, permit in (("validator", 500.0, True), ("miner", 1.0, False), ("weak", 1.0, False)):
        w = wallets[name]
        s.register(NETUID, w.hotkey.ss58_address, w.coldkeypub.ss58_address, stake, permit)
    s.register(NETUID, "5FourthHotkey")
    return s


@pytest.fixture
def open_chain(state):
    handles = []

    def make(wallet=None, timeout_s: float = 10) -> BittensorChain:
        chain = BittensorChain("local", NETUID, wallet=wallet, timeout_s=timeout_s,
                               substrate=lambda: FakeSubstrate(state))
        handles.append(chain)
        return chain

    yield make
    for h in handles:
        h.close()


@pytest.fixture
def encrypted(monkeypatch) -> list[dict]:
    """What the SDK timelock-encrypts (the ciphertext itself is opaque until drand reveals it)."""
    seen: list[dict] = []
    real = bittensor_core.get_encrypted_commit_v2

    def spy(**kwargs):
        seen.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(bittensor_core, "get_encrypted_commit_v2", spy)
    return seen


def extrinsics(state: FakeChainState, function: str) -> list[dict]:
    return [e for e in state.extrinsics if e["function"] == function]


# ----------------------------------------------------------------------------- commit-reveal


def test_commit_reveal_subnet_gets_a_timelocked_commit_with_its_reveal_round(open_chain, state, wallets, encrypted):
    chain = open_chain(wallets["validator"])
    result = chain.set_weights([1, 2], [1.0, 3.0], version_key=7)
    assert result.success and result.committed and result.reveal_round is not None
    assert "committed" in result.message
    [commit] = extrinsics(state, "commit_timelocked_mechanism_weights")
    assert commit["params"]["commit_reveal_version"] == 4
    assert commit["params"]["reveal_round"] == result.reveal_round
    assert extrinsics(state, "set_mechanism_weights") == []
    assert state.subnets[NETUID].weights == {}  # nothing applied: a commit is not weights
    [inputs] = encrypted
    subnet = state.subnets[NETUID]
    assert inputs["subnet_reveal_period_epochs"] == subnet.reveal_period_epochs
    assert inputs["tempo"] == subnet.tempo and inputs["version_key"] == 7
    assert inputs["current_block"] == commit["block"] - 1  # built at the head, landed in the next block
    assert dict(zip(inputs["uids"], inputs["weights"]))[2] == 65535


def test_plaintext_weights_are_refused_while_commit_reveal_is_on(open_chain, state, wallets):
    chain = open_chain(wallets["validator"])
    signer = wallets["validator"].hotkey
    call = bt.calls.SubtensorModule.set_mechanism_weights(netuid=NETUID, mecid=0, dests=[0, 1, 2, 3],
                                                          weights=[1, 65535, 1, 1], version_key=0)
    result = chain._run("raw", lambda c, s: c.submit_call(call, signer, signer="hotkey"))
    assert not result.success and result.error.name == "CommitRevealEnabled"
    assert state.subnets[NETUID].weights == {}


@pytest.mark.parametrize("min_allowed", [1024, 8])
def test_minimum_weight_count_is_met_on_a_four_uid_subnet(open_chain, state, wallets, encrypted, min_allowed):
    state.subnets[NETUID].min_allowed_weights = min_allowed
    result = open_chain(wallets["validator"]).set_weights([1, 2], [1.0, 1e-7], version_key=1)
    assert result.success, result
    [inputs] = encrypted
    sent = dict(zip(inputs["uids"], inputs["weights"]))
    assert sent == {1: 65535, 2: 1, 0: 1, 3: 1}  # every uid; the winner keeps its place


def test_the_sdks_own_count_check_would_refuse_what_the_chain_accepts(open_chain, state, wallets):
    """Why the adapter does not use bt.SetWeights as is: it compares against the raw 1024."""
    chain = open_chain(wallets["validator"])
    signer = wallets["validator"].hotkey
    intent = bt.SetWeights(netuid=NETUID, uids=[0, 1, 2, 3], weights=[0.1, 1.0, 0.2, 0.3])
    with pytest.raises(bt.ChainError) as e:
        chain._run("sdk", lambda c, s: c.execute(intent, signer, wait_for_inclusion=True))
    assert e.value.code.value == "invalid_argument" and "1024" in e.value.message
    assert state.extrinsics == []


def test_plaintext_weights_meet_the_minimum_count_too(open_chain, state, wallets):
    state.subnets[NETUID].commit_reveal = False
    result = open_chain(wallets["validator"]).set_weights([1], [1.0], version_key=1)
    assert result.success and not result.committed
    assert dict(state.subnets[NETUID].weights[0]) == {1: 65535, 0: 1, 2: 1, 3: 1}


def test_a_validator_without_permit_is_told_before_committing(open_chain, state, wallets):
    result = open_chain(wallets["miner"]).set_weights([0, 1], [1.0, 1.0], version_key=1)
    assert (result.success, result.code) == (False, "no_permit")
    assert state.extrinsics == []  # the chain would accept the commit and drop it silently at reveal


def test_too_little_stake_is_refused_by_the_chain(open_chain, state, wallets):
    state.subnets[NETUID].commit_reveal = False
    state.stake_threshold_rao = 1000 * 10**9
    result = open_chain(wallets["validator"]).set_weights([1], [1.0], version_key=1)
    assert (result.success, result.code) == (False, "no_permit")
    assert extrinsics(state, "set_mechanism_weights")[0]["error"] == "NotEnoughStakeToSetWeights"


def test_committing_too_fast_and_too_many_unrevealed_commits(open_chain, state, wallets):
    subnet = state.subnets[NETUID]
    first = open_chain(wallets["validator"]).set_weights([1], [1.0], 1)
    assert first.success
    again = open_chain(wallets["validator"]).set_weights([1], [1.0], 1)  # a fresh handle: the chain refuses
    assert (again.success, again.code) == (False, "rate_limited")
    subnet.weights_rate_limit = 0
    validator = open_chain(wallets["validator"])
    results = [validator.set_weights([1], [1.0], 1) for _ in range(10)]
    assert [r.success for r in results] == [True] * 9 + [False]
    assert results[-1].code == "limit_exceeded"
    assert extrinsics(state, "commit_timelocked_mechanism_weights")[-1]["error"] == "TooManyUnrevealedCommits"
    state.advance((subnet.tempo + 1) * (subnet.reveal_period_epochs + 1))
    assert subnet.unrevealed() == []  # expired (no drand pulse to reveal them with)
    assert validator.set_weights([1], [1.0], 1).success


def test_commitment_space_quota_per_epoch(open_chain, state, wallets):
    state.max_space = 250  # each commitment costs at least 100 bytes
    miner = open_chain(wallets["miner"])
    miner.commit("a")
    miner.commit("b")
    with pytest.raises(ChainError) as e:
        miner.commit("c")
    assert e.value.code == "limit_exceeded"
    state.advance(state.subnets[NETUID].tempo + 1)
    miner.commit("c")


# ----------------------------------------------------------------------------- the error contract


def test_rpc_policy_refusal_is_rate_limited_with_retry_after_and_no_reconnect(open_chain, state):
    reader = open_chain()
    reader.current_block()
    opened = state.connections
    state.refuse_requests(1, retry_after="30")
    with pytest.raises(ChainError) as e:
        reader.current_block()
    assert (e.value.code, e.value.retry_after_s) == ("rate_limited", 30.0)
    assert state.connections == opened  # a refusal is not a dropped connection
    assert reader.current_block() == state.block


def test_rpc_policy_refusal_on_weights_carries_retry_after(open_chain, state, wallets):
    validator = open_chain(wallets["validator"])
    validator.current_block()
    state.fail("query:SubtensorModule.Uids", bt.RpcPolicyError("refused", status_code=429, retry_after="12"))
    result = validator.set_weights([1], [1.0], 1)
    assert (result.success, result.code, result.retry_after_s) == (False, "rate_limited", 12.0)


@pytest.mark.parametrize("error", [StorageFunctionNotFound("Storage function SubtensorModule.Uids not found"),
                                   ValueError("Could not decode u16: input too short")],
                         ids=["storage-missing", "codec"])
def test_runtime_mismatches_become_codes_everywhere(open_chain, state, wallets, error):
    validator, miner, reader = open_chain(wallets["validator"]), open_chain(wallets["miner"]), open_chain()
    validator.current_block()
    state.fail("query:SubtensorModule.Uids", error)
    result = validator.set_weights([1], [1.0], 1)
    assert (result.success, result.code) == (False, "runtime_mismatch")
    state.fail("compose", error)
    with pytest.raises(ChainError) as e:
        miner.commit("model")
    assert e.value.code == "runtime_mismatch"
    state.fail("runtime:", error)
    with pytest.raises(ChainError) as e:
        reader.metagraph()
    assert e.value.code == "runtime_mismatch"
    assert state.extrinsics == []


def test_a_runtime_without_the_commit_reveal_storage(open_chain, state, wallets):
    state.subnets[NETUID].missing_storage.add("RevealPeriodEpochs")
    result = open_chain(wallets["validator"]).set_weights([1], [1.0], 1)
    assert (result.success, result.code) == (False, "runtime_mismatch")


def test_a_lost_outcome_is_unknown_and_never_resent(open_chain, state, wallets):
    state.lose_outcomes(1)
    result = open_chain(wallets["validator"]).set_weights([1], [1.0], 1)
    assert (result.success, result.code) == (False, "unknown_outcome")
    [commit] = extrinsics(state, "commit_timelocked_mechanism_weights")
    assert commit["success"]  # it did land


def test_a_drop_during_submission_is_unknown_and_not_retried(open_chain, state, wallets):
    validator = open_chain(wallets["validator"])
    validator.current_block()
    state.fail("submit", FakeConnectionDropped("websocket dropped (1006)"))
    result = validator.set_weights([1], [1.0], 1)
    assert (result.success, result.code) == (False, "unknown_outcome")
    assert state.calls["submit"] == 1  # not resubmitted on a fresh connection


def test_a_lost_commitment_outcome_is_unknown(open_chain, state, wallets):
    state.lose_outcomes(1)
    with pytest.raises(ChainError) as e:
        open_chain(wallets["miner"]).commit("model")
    assert e.value.code == "unknown_outcome"


def test_calls_match_the_sdks_generated_description():
    check_call_arguments("SubtensorModule", "set_mechanism_weights",
                         {"netuid": 2, "mecid": 0, "dests": [0, 1], "weights": [1, 65535], "version_key": 7})
    with pytest.raises(ValueError):
        check_call_arguments("SubtensorModule", "set_mechanism_weights",
                             {"netuid": 2, "mecid": 0, "dests": [0], "weights": [65536], "version_key": 7})
    with pytest.raises(ValueError):
        check_call_arguments("Commitments", "set_commitment", {"netuid": 70000, "info": {}})
    with pytest.raises(ValueError):
        check_call_arguments("Commitments", "set_commitment", {"netuid": 2, "data": {}})


# ----------------------------------------------------------------------------- blocks


def test_seed_hashes_come_from_finalized_blocks(open_chain, state):
    reader = open_chain(timeout_s=0.5)
    head = state.block
    assert reader.block_hash(head - state.finality_lag) == state.hash_of(head - state.finality_lag)
    with pytest.raises(ChainError) as e:
        reader.block_hash(head - 1)  # exists, but not final: a reorg could still change it
    assert e.value.code == "not_finalized"
    with pytest.raises(ChainError) as e:
        reader.block_hash(head + 5)
    assert e.value.code == "unknown_block"
    with pytest.raises(ChainError) as e:
        reader.block_hash(-1)
    assert e.value.code == "unknown_block"


def test_metagraph_keeps_block_at_registration(open_chain, state):
    state.advance(10)
    late = state.register(NETUID, "5LateHotkey")
    graph = open_chain().metagraph()
    assert graph.neurons[late].block_at_registration == state.block
    assert graph.neurons[0].block_at_registration == 5000
