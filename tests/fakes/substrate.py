"""An in-memory subtensor behind the bittensor SDK's `Substrate` protocol.

`bt.Subtensor("local", substrate=FakeSubstrate(state))` runs the SDK's real code above the
transport: `subnets.metagraph` (metagraph decoding), `subnets.commitments` (commitment decoding),
`hyperparameters.weights_rate_limit`, the `SetWeights` intent (its preflight, normalisation, u16
quantisation and, on a commit-reveal subnet, its epoch bookkeeping and real timelock encryption)
through the real `Executor` (plan, policy, signer resolution), and `submit_call` for raw calls.
What is faked is exactly the `Substrate` seam: storage and runtime-API answers are returned
already decoded (the shapes the SDK's RPC backend hands up, see `bittensor/_substrate.py`), and
calls are "composed" into a deterministic byte form instead of SCALE (the SDK ships no runtime
metadata to encode with); `compose` checks every call's argument names and integer widths
against the SDK's generated call catalog (`bittensor.calls`, generated from runtime metadata).

Unhappy paths are the real transport's: storage a runtime lacks raises `StorageFunctionNotFound`
(a ValueError), an RPC policy refusal raises `bt.RpcPolicyError` with `retry_after`, a websocket
drop during a submission raises `bt.ChainError` (as `RpcSubstrate._failed_submit` does), and a
submission whose outcome is lost comes back as a *failed result* with no runtime error name.
`submit` applies the call by the runtime's rules (`tests/fakes/subtensor_state.py`), checks the
signature, and reports a refusal as `RpcSubstrate._result_from_report` does (a failed
`ExtrinsicResult` carrying `ChainError(text, name)` with the runtime's error name).

`FakeChainState` is the chain; each `FakeSubstrate` is one connection to it, so a test can drop a
connection (`state.drop_connections(1)`) and check that a client reconnects with a fresh one.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import bittensor as bt
from bittensor._transport.errors import (
    StorageFunctionNotFound,
    SubstrateRequestException,
)
from bittensor.result import chain_error_from_substrate_request

from tests.fakes.subtensor_state import (  # noqa: F401 - re-exported for tests
    ERROR_TEXT,
    RAO_PER_TAO,
    U16_MAX,
    FakeChainState,
    FakeConnectionDropped,
    FakeNeuron,
    FakeSubnet,
    apply_commitment,
    apply_timelocked_commit,
    apply_weights,
    metagraph_record,
)


@dataclass(frozen=True)
class FakeComposedCall:
    """A composed call: the generated `Call` plus a deterministic byte encoding to sign."""

    module: str
    function: str
    params: dict

    @property
    def value(self) -> dict:
        return {"call_module": self.module, "call_function": self.function,
                "call_args": [{"name": k, "value": v} for k, v in self.params.items()]}

    @property
    def data(self) -> bytes:
        return json.dumps([self.module, self.function, self.params], sort_keys=True, default=repr).encode()


_APPLY = {
    ("SubtensorModule", "set_mechanism_weights"): apply_weights,
    ("SubtensorModule", "commit_timelocked_mechanism_weights"): apply_timelocked_commit,
    ("Commitments", "set_commitment"): apply_commitment,
}
# Integer widths of the generated catalog's argument types.
_INT_BITS = {"u8": 8, "u16": 16, "u32": 32, "u64": 64, "NetUid": 16, "MechId": 8}


def check_call_arguments(module: str, function: str, params: dict) -> None:
    """Our call against the SDK's generated description of it: the same argument names, integers
    in range for their declared width, u16 vectors for weights. A mismatch is what the real codec
    would refuse while encoding (a ValueError)."""
    builder = getattr(getattr(bt.calls, module, None), function, None)
    if builder is None:
        raise StorageFunctionNotFound(f"{module}.{function}")
    declared = inspect.signature(builder).parameters
    if set(declared) != set(params):
        raise ValueError(f"{module}.{function} takes {sorted(declared)}, got {sorted(params)}")
    for name, parameter in declared.items():
        value, kind = params[name], str(parameter.annotation).strip("'\"")
        if kind in _INT_BITS:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** _INT_BITS[kind]:
                raise ValueError(f"{module}.{function}: {name}={value!r} is not a {kind}")
        elif kind == "BoundedVec" and not isinstance(value, (bytes, bytearray)):
            raise ValueError(f"{module}.{function}: {name} must be bytes, got {type(value).__name__}")
    for name in ("dests", "weights"):
        if name in params and any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= U16_MAX
                                  for v in params[name]):
            raise ValueError(f"{module}.{function}: {name} must be u16 values")


class FakeSubstrate:
    """One connection to a `FakeChainState`, implementing the SDK's `Substrate` protocol."""

    def __init__(self, state: FakeChainState) -> None:
        self.state = state
        self.token_symbols: dict[int, str] = {}
        self.connected = False
        self.dead = False

    # plumbing ------------------------------------------------------------------------

    def _enter(self, name: str) -> FakeChainState:
        self.state.calls[name] += 1
        if not self.connected:
            raise bt.ConnectionNotReady("fake substrate: connection is not open")
        if self.dead:
            raise bt.RpcConnectionError("fake substrate: connection closed (1006)")
        if self.state.take_drop():
            self.dead = True
            raise FakeConnectionDropped("fake substrate: websocket dropped (1006)")
        fault = self.state.take_fault(name)
        if fault is not None:
            raise fault
        return self.state

    def _subnet(self, netuid: Any) -> FakeSubnet | None:
        return self.state.subnets.get(int(netuid) % 4096)

    def balance(self, rao: int, netuid: int = 0) -> bt.Balance:
        return bt.Balance.from_rao(int(rao), netuid, self.token_symbols.get(netuid) if netuid else None)

    # lifecycle -----------------------------------------------------------------------

    async def connect(self) -> None:
        if self.dead:
            raise bt.RpcConnectionError("fake substrate: this connection is dead; open a new one")
        if not self.connected:
            self.connected = True
            self.state.connections += 1

    async def close(self) -> None:
        # Like RpcSubstrate: closing drops the websocket; the next connect() opens a fresh one.
        self.connected = False
        self.dead = False

    # reads ---------------------------------------------------------------------------

    async def block_hash(self, block: int | None = None) -> str:
        state = self._enter("block_hash")
        block = state.block if block is None else int(block)
        if block < 0 or block > state.block:
            raise bt.ChainError(f"block {block} not found")
        return state.hash_of(block)

    async def block_number(self) -> int:
        state = self._enter("block_number")
        await state.maybe_hang()
        return state.block

    async def finalized_block_number(self) -> int:
        state = self._enter("finalized_block_number")
        return max(0, state.block - state.finality_lag)

    async def block_time(self) -> float:
        return self._enter("block_time").block_time

    async def spec_version(self) -> int:
        self._enter("spec_version")
        return 1

    async def get_block(self, block_number: int | None = None, block_hash: str | None = None) -> dict | None:
        state = self._enter("get_block")
        number = state.block_of(block_hash) if block_hash else (state.block if block_number is None else block_number)
        if number > state.block:
            return None
        return {"header": {"number": number, "hash": state.hash_of(number),
                           "parentHash": state.hash_of(max(0, number - 1))}, "extrinsics": []}

    async def query(self, module: str, storage_function: str, params: list | None = None,
                    block_hash: str | None = None) -> Any:
        state = self._enter(f"query:{module}.{storage_function}")
        block = state.block_of(block_hash)
        params = list(params or [])
        key = (module, storage_function)
        subnet = self._subnet(params[0]) if params else None
        if subnet is not None and storage_function in subnet.missing_storage:
            raise StorageFunctionNotFound(f"Storage function {module}.{storage_function} not found")
        if key == ("SubtensorModule", "Uids"):
            return subnet.uid_of(params[1]) if subnet else None
        if key == ("Commitments", "CommitmentOf"):
            return subnet.commitments.get(params[1]) if subnet else None
        if key == ("Timestamp", "Now"):
            return int(block * state.block_time * 1000)
        if key == ("SubtensorModule", "StakeThreshold"):
            return state.stake_threshold_rao
        if key == ("Commitments", "MaxSpace"):
            return state.max_space
        if key == ("SubtensorModule", "TimelockedWeightCommits"):
            return [list(c) for c in subnet.timelocked_commits.get(int(params[1]), [])] if subnet else []
        answers = {
            ("SubtensorModule", "CommitRevealWeightsEnabled"): lambda s: s.commit_reveal,
            ("SubtensorModule", "WeightsSetRateLimit"): lambda s: s.weights_rate_limit,
            ("SubtensorModule", "WeightsVersionKey"): lambda s: s.weights_version_key,
            ("SubtensorModule", "MinAllowedWeights"): lambda s: s.min_allowed_weights,
            ("SubtensorModule", "MaxWeightsLimit"): lambda s: s.max_weights_limit,
            ("SubtensorModule", "SubnetEpochConsensus"): lambda s: "Yuma",
            ("SubtensorModule", "Tempo"): lambda s: s.tempo,
            ("SubtensorModule", "SubnetworkN"): lambda s: len(s.neurons),
            ("SubtensorModule", "SubnetOwnerHotkey"): lambda s: s.owner_hotkey or None,
            ("SubtensorModule", "RevealPeriodEpochs"): lambda s: s.reveal_period_epochs,
            ("SubtensorModule", "SubnetEpochIndex"): lambda s: s.epoch(block),
            ("SubtensorModule", "LastEpochBlock"): lambda s: s.last_epoch_block(block),
            ("SubtensorModule", "BlocksSinceLastStep"): lambda s: block - s.last_epoch_block(block),
            ("SubtensorModule", "PendingEpochAt"): lambda s: 0,
            ("SubtensorModule", "LastUpdate"): lambda s: [n.last_update for n in s.neurons],
            ("SubtensorModule", "ValidatorPermit"): lambda s: [n.validator_permit for n in s.neurons],
        }
        if key in answers:
            return answers[key](subnet) if subnet is not None else None
        raise StorageFunctionNotFound(f"fake substrate does not model storage {module}.{storage_function}")

    async def map_has_entries(self, module: str, storage_function: str, params: list,
                              block_hash: str | None = None) -> bool:
        return bool(await self.query_map(module, storage_function, params, block_hash))

    async def query_map(self, module: str, storage_function: str, params: list | None = None,
                        block_hash: str | None = None) -> list[tuple[Any, Any]]:
        state = self._enter(f"query_map:{module}.{storage_function}")
        state.block_of(block_hash)
        params = list(params or [])
        key = (module, storage_function)
        if key == ("SubtensorModule", "TokenSymbol"):
            return [(netuid, "0x" + "α".encode().hex()) for netuid in state.subnets]
        subnet = self._subnet(params[0]) if params else None
        if key == ("Commitments", "CommitmentOf"):
            return list(subnet.commitments.items()) if subnet else []
        if key == ("Commitments", "RevealedCommitments"):
            return []
        if key == ("SubtensorModule", "Uids"):
            return [(n.hotkey, uid) for uid, n in enumerate(subnet.neurons)] if subnet else []
        raise StorageFunctionNotFound(f"fake substrate does not model storage map {module}.{storage_function}")

    async def query_batch(self, module: str, storage_function: str, param_sets: list[list],
                          block_hash: str | None = None) -> list[Any]:
        return [await self.query(module, storage_function, p, block_hash) for p in param_sets]

    async def runtime_call(self, api: str, method: str, params: list, block_hash: str | None = None) -> Any:
        state = self._enter(f"runtime:{api}.{method}")
        await state.maybe_hang()
        block = state.block_of(block_hash)
        if (api, method) != ("SubnetInfoRuntimeApi", "get_metagraph"):
            raise ValueError(f"runtime API {api}.{method} not found in metadata")
        subnet = self._subnet(params[0])
        if subnet is None:
            return None
        return metagraph_record(subnet, block)

    async def constant(self, module: str, name: str) -> Any:
        state = self._enter(f"constant:{module}.{name}")
        if (module, name) == ("Aura", "SlotDuration"):
            return int(state.block_time * 1000)
        raise ValueError(f"constant {module}.{name} not found in metadata")

    async def decode_scale(self, type_string: str, data: Any) -> Any:
        raise NotImplementedError("fake substrate: decode_scale is not modelled")

    async def blocks(self, *, finalized: bool = False) -> AsyncIterator[dict]:
        raise NotImplementedError("fake substrate: block subscriptions are not modelled")
        yield {}  # pragma: no cover

    async def events(self, block_hash: str | None = None) -> list[dict]:
        self._enter("events")
        return []

    # calls and fees ------------------------------------------------------------------

    async def compose(self, call) -> FakeComposedCall:
        self._enter("compose")
        module, function, params = call
        check_call_arguments(module, function, dict(params))
        if (module, function) not in _APPLY:
            raise bt.ChainError(f"fake substrate does not model call {module}.{function}")
        return FakeComposedCall(module, function, dict(params))

    async def estimate_fee(self, call, keypair) -> bt.Balance:
        self._enter("estimate_fee")
        return bt.Balance.from_rao(1_000_000)

    async def estimate_weight(self, call, keypair) -> dict:
        self._enter("estimate_weight")
        return {"ref_time": 1, "proof_size": 1}

    async def account_next_index(self, address: str) -> int:
        return self._enter("account_next_index").nonces[address]

    # writes --------------------------------------------------------------------------

    async def submit(self, call, keypair, *, nonce: int | None = None, period: int | None = 64,
                     wait_for_inclusion: bool = True, wait_for_finalization: bool = True) -> bt.ExtrinsicResult:
        try:
            state = self._enter("submit")
        except bt.RpcPolicyError:
            raise
        except (bt.BittensorError, ConnectionError, OSError) as e:
            # RpcSubstrate._failed_submit: a transport failure around a submission is a ChainError.
            raise bt.ChainError(str(e)) from e
        if not isinstance(call, FakeComposedCall):
            raise bt.ChainError(f"submit expects a composed call, got {type(call).__name__}")
        signature = keypair.sign(call.data)
        if hasattr(keypair, "verify") and not keypair.verify(call.data, signature):
            return _failure(state, "BadProof", "bad signature")
        signer = keypair.ss58_address
        state.nonces[signer] += 1
        state.advance(1)  # the extrinsic lands in the next block
        entry = {"module": call.module, "function": call.function, "params": call.params,
                 "signer": signer, "block": state.block, "success": False}
        state.extrinsics.append(entry)
        error = _APPLY[(call.module, call.function)](state, call.params, signer)
        if error is not None:
            entry["error"] = error[0]
            return _failure(state, *error)
        entry["success"] = True
        if state.take_lost_outcome():
            # The watch ended before the outcome was read (RpcSubstrate._failed_submit's failed result).
            lost = chain_error_from_substrate_request(SubstrateRequestException(
                f"extrinsic watch for 0x{call.data.hex()[:16]} ended without reaching the awaited state"))
            return bt.ExtrinsicResult(success=False, message=lost.message, error=lost)
        return bt.ExtrinsicResult(success=True, message="Success", block_hash=state.hash_of(state.block),
                                  extrinsic_id=f"{state.block}-0001", fee=bt.Balance.from_rao(1_000_000))

    async def submit_signed(self, extrinsic, keypair, **kwargs) -> bt.ExtrinsicResult:
        raise NotImplementedError("fake substrate: pre-signed extrinsics are not modelled")

    async def sign_extrinsic(self, call, keypair, *, nonce: int, period: int) -> tuple[bytes, str]:
        raise NotImplementedError("fake substrate: MEV-shielded signing is not modelled")

    async def find_extrinsic(self, extrinsic_hash: str, block_hash: str):
        return None

    async def mev_next_key(self) -> bytes | None:
        return None

    async def prepare(self, call, **kwargs):
        raise NotImplementedError("fake substrate: out-of-process signing is not modelled")

    async def submit_signature(self, unsigned, signature, **kwargs):
        raise NotImplementedError("fake substrate: out-of-process signing is not modelled")

    def multisig_account(self, signatories: list[str], threshold: int):
        raise NotImplementedError("fake substrate: multisig is not modelled")

    async def submit_multisig(self, call, keypair, multisig_account, **kwargs):
        raise NotImplementedError("fake substrate: multisig is not modelled")


def _failure(state: FakeChainState, name: str, text: str | None = None) -> bt.ExtrinsicResult:
    text = text or ERROR_TEXT.get(name, name)
    return bt.ExtrinsicResult(success=False, message=text, block_hash=state.hash_of(state.block),
                              extrinsic_id=f"{state.block}-0001", error=bt.ChainError(text, name))
