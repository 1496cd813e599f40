"""The validator daemon on the real bittensor SDK over the fake subtensor (commit-reveal on, as on
new subnets), while the runtime and the SDK disagree: `StorageFunctionNotFound` and a codec
`ValueError` injected into set_weights and into the metagraph read. Each round records what
happened with a code, and the daemon keeps running; a commit is shown as "committed, reveals at
round R" and never as weights the chain applied.

Rounds run for real (`Daemon.run_one` -> `run_round`) with no commitments, so nothing is scored and
the seeded EMA is what gets set.
"""

from __future__ import annotations

import pytest
from bittensor._transport.errors import StorageFunctionNotFound

from subnet.chain.bittensor import BittensorChain
from subnet.chain.keys import create_wallet
from subnet.competitions import DEFAULT_COMPETITIONS
from subnet.validator import state as st
from subnet.validator.config import ValidatorConfig
from subnet.validator.daemon import Daemon
from subnet.validator.round import RoundDeps
from subnet.validator.score_table import weights_summary
from subnet.validator.state import ValidatorState
from tests.fakes.substrate import FakeChainState, FakeSubstrate

NETUID = 5
TINY = {"tiny": DEFAULT_COMPETITIONS["tiny"]}
MINERS = ("5MinerOne", "5MinerTwo", "5MinerThree")


@pytest.fixture(scope="module")
def wallet(tmp_path_factory):
    return create_wallet(tmp_path_factory.mktemp("wallets"), "validator")


@pytest.fixture
def world(tmp_path, wallet, monkeypatch):
    monkeypatch.setenv("BTCLI_TOKEN_SYMBOLS_CACHE", str(tmp_path / "token_symbols.json"))
    chain_state = FakeChainState(block=10_005)
    chain_state.finality_lag = 0  # blocks here move only when a test (or a submission) moves them
    chain_state.add_subnet(NETUID, weights_rate_limit=1)
    chain_state.register(NETUID, wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address, 1000.0, True)
    for hotkey in MINERS:
        chain_state.register(NETUID, hotkey)
    config = ValidatorConfig(network="local", netuid=NETUID, state_dir=tmp_path / "state",
                             store=f"local:{tmp_path / 'store'}", competitions=("tiny",), api_port=0,
                             weights_interval_blocks=1, weights_retries=3, min_free_disk_bytes=0,
                             seed_window_blocks=10, eligibility_margin_blocks=2, max_chain_backoff_s=5.0)
    state = ValidatorState(config.db_path)
    chain = BittensorChain("local", NETUID, wallet=wallet, timeout_s=10, substrate=lambda: FakeSubstrate(chain_state))

    def unused(*_):
        raise AssertionError("no model should be fetched or scored in these rounds")

    from subnet.hub.local import LocalStore

    deps = RoundDeps(chain=chain, store=LocalStore(tmp_path / "store"), state=state, config=config,
                     competitions=TINY, known_competitions=TINY, source_for=unused, scorer=unused)
    # The EMA a past round left behind: the second miner leads.
    rid = state.start_round(10_000, "0xseed")
    state.complete_scoring(rid, [], [], {"tiny": {MINERS[0]: 0.2, MINERS[1]: 0.8}}, [],
                           registered={hk: uid for uid, hk in enumerate([wallet.hotkey.ss58_address, *MINERS])})
    state.finish_round(rid, st.ROUND_DONE)
    yield chain_state, deps, Daemon(deps, on_round=lambda summary: None)
    chain.close()
    state.close()


ERRORS = [StorageFunctionNotFound("Storage function SubtensorModule.Uids not found in metadata"),
          ValueError("Decoding <u16> failed: not enough data")]


@pytest.mark.parametrize("error", ERRORS, ids=["storage-missing", "codec"])
def test_a_runtime_mismatch_in_set_weights_is_a_failed_attempt_with_a_code(world, error):
    chain_state, deps, daemon = world
    chain_state.fail("query:SubtensorModule.Uids", error)  # read only by the weights preflight
    daemon.run_one()
    [round_] = [r for r in deps.state.rounds(limit=5) if r.block > 10_000]
    assert round_.status == st.ROUND_DONE
    [attempt] = deps.state.weight_attempts(round_.id)
    assert (attempt.status, attempt.code) == (st.ATTEMPT_FAILED, "runtime_mismatch")
    assert chain_state.extrinsics == [] and daemon.stats.failed == 0
    assert deps.metrics.chain_errors._value.get() == 1
    chain_state.advance(3)
    daemon.run_one()  # the daemon goes on: the next round commits the weights
    latest = deps.state.weight_attempts(deps.state.rounds(limit=1)[0].id)
    assert latest[-1].committed and latest[-1].code is None
    assert [e["function"] for e in chain_state.extrinsics] == ["commit_timelocked_mechanism_weights"]


@pytest.mark.parametrize("error", ERRORS, ids=["storage-missing", "codec"])
def test_a_runtime_mismatch_in_the_metagraph_read_fails_the_round_not_the_daemon(world, error):
    chain_state, deps, daemon = world
    chain_state.fail("runtime:SubnetInfoRuntimeApi.get_metagraph", error)
    delay = daemon.run_one()
    assert daemon.stats.failed == 1 and delay > 0  # a chain failure: backed off, not fatal
    assert deps.state.get_meta("last_error")["type"] == "ChainError"
    assert "runtime" in deps.state.get_meta("last_error")["message"]
    assert deps.metrics.chain_errors._value.get() == 1
    daemon.run_one()
    assert daemon.stats.completed == 1 and deps.state.latest_weights_attempt().committed


def test_a_commit_shows_as_committed_with_its_reveal_round(world):
    chain_state, deps, daemon = world
    daemon.run_one()
    summary = weights_summary(deps.state)
    [commit] = chain_state.extrinsics
    assert summary["status"] == "committed"
    assert summary["reveal_round"] == commit["params"]["reveal_round"]
    assert summary["text"] == f"committed, reveals at round {commit['params']['reveal_round']}"
    assert chain_state.subnets[NETUID].weights == {}  # nothing applied on chain yet


def test_an_rpc_refusal_backs_the_daemon_off_for_retry_after(world):
    chain_state, deps, daemon = world
    chain_state.refuse_requests(1, retry_after="120")
    assert daemon.run_one() == 120.0  # longer than max_chain_backoff_s: the endpoint said so
    assert deps.state.get_meta("last_error")["type"] == "ChainError"


def test_an_unknown_outcome_is_recorded_and_not_resent(world):
    chain_state, deps, daemon = world
    chain_state.lose_outcomes(1)
    daemon.run_one()
    [attempt] = deps.state.weight_attempts(deps.state.rounds(limit=1)[0].id)
    assert (attempt.status, attempt.code) == (st.ATTEMPT_UNKNOWN, "unknown_outcome")
    assert len(chain_state.extrinsics) == 1  # landed once, not resent
    assert weights_summary(deps.state)["text"].startswith("outcome unknown")


def test_invalid_arguments_are_not_retried(world):
    chain_state, deps, daemon = world
    chain_state.subnets[NETUID].commit_reveal = False
    chain_state.subnets[NETUID].weights_version_key = 10**9  # the chain refuses our version key
    daemon.run_one()
    [attempt] = deps.state.weight_attempts(deps.state.rounds(limit=1)[0].id)
    assert (attempt.status, attempt.code) == (st.ATTEMPT_FAILED, "invalid_argument")
    assert len(chain_state.extrinsics) == 1
