"""An in-memory subtensor behind the bittensor SDK's `Substrate` protocol.

`bt.Subtensor("local", substrate=FakeSubstrate(state))` runs the SDK's real code above the
transport: `subnets.metagraph` (metagraph decoding), `subnets.commitments` (commitment decoding),
`hyperparameters.weights_rate_limit`, the `SetWeights` intent (its preflight, normalisation and
u16 quantisation) through the real `Executor` (plan, policy, signer resolution), and
`submit_call` for raw calls. What is faked is exactly the `Substrate` seam: storage and runtime-API
answers are returned already decoded (the shapes the SDK's RPC backend hands up, see
`bittensor/_substrate.py`), calls are "composed" into a deterministic byte form instead of SCALE
against runtime metadata (the SDK ships no metadata, and the RPC codec needs a node), and
`submit` applies the call to this state, checks the signature with the signer's public key, and
reports the outcome the way `RpcSubstrate._result_from_report` does (a failed `ExtrinsicResult`
carrying `ChainError(text, name)` with the runtime's error name).

`FakeChainState` is the chain; each `FakeSubstrate` is one connection to it, so a test can drop a
connection (`state.drop_connections(1)`) and check that a client reconnects with a fresh one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Optional

import bittensor as bt
from bittensor._generated.errors import ERRORS

U16_MAX = 65535
RAO_PER_TAO = 10**9


@dataclass
class FakeNeuron:
    hotkey: str
    coldkey: str
    stake_rao: int
    validator_permit: bool
    last_update: int = 0
    registered_at: int = 0


@dataclass
class FakeSubnet:
    netuid: int
    weights_rate_limit: int = 100
    weights_version_key: int = 0
    commit_reveal: bool = False
    min_allowed_weights: int = 0
    max_weights_limit: int = U16_MAX
    tempo: int = 360
    neurons: list[FakeNeuron] = field(default_factory=list)
    # hotkey -> Commitments.CommitmentOf record, in the decoded shape the SDK reads.
    commitments: dict[str, dict] = field(default_factory=dict)
    # uid -> [(dest uid, u16 value)] as the chain stores them.
    weights: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    def uid_of(self, hotkey: str) -> Optional[int]:
        for uid, n in enumerate(self.neurons):
            if n.hotkey == hotkey:
                return uid
        return None


class FakeConnectionDropped(ConnectionError):
    """What the fake raises where a real websocket would have dropped."""


class FakeChainState:
    """The chain itself: blocks, subnets, neurons, commitments, weights, and a log of extrinsics."""

    def __init__(self, block: int = 1000, block_time: float = 12.0) -> None:
        self.block = block
        self.block_time = block_time
        self.subnets: dict[int, FakeSubnet] = {}
        self.extrinsics: list[dict] = []  # every submitted call, successful or not
        self.calls: Counter[str] = Counter()  # Substrate method -> times called
        self.connections = 0  # connections opened so far
        self._drops = 0
        self._hangs = 0
        self.nonces: Counter[str] = Counter()

    # test controls -------------------------------------------------------------------

    def add_subnet(self, netuid: int, **hyperparameters: Any) -> FakeSubnet:
        subnet = FakeSubnet(netuid=netuid, **hyperparameters)
        self.subnets[netuid] = subnet
        return subnet

    def register(self, netuid: int, hotkey: str, coldkey: str = "", stake: float = 0.0,
                 validator_permit: bool = False) -> int:
        subnet = self.subnets[netuid]
        uid = subnet.uid_of(hotkey)
        if uid is not None:
            return uid
        subnet.neurons.append(FakeNeuron(hotkey, coldkey or hotkey, int(stake * RAO_PER_TAO),
                                         validator_permit, 0, self.block))
        return len(subnet.neurons) - 1

    def advance(self, blocks: int) -> int:
        self.block += int(blocks)
        return self.block

    def drop_connections(self, times: int = 1) -> None:
        """The next `times` calls on any open connection fail as a dropped websocket would, and that
        connection stays dead: only a fresh connection works again."""
        self._drops += int(times)

    def clear_faults(self) -> None:
        self._drops = self._hangs = 0

    def hang_requests(self, times: int = 1) -> None:
        """The next `times` block-number or runtime-API reads never answer (a stalled node)."""
        self._hangs += int(times)

    async def maybe_hang(self) -> None:
        if self._hangs > 0:
            self._hangs -= 1
            await asyncio.sleep(3600)

    def hash_of(self, block: int) -> str:
        return "0x" + hashlib.sha256(f"fake-subtensor:{block}".encode()).hexdigest()

    def block_of(self, block_hash: Optional[str]) -> int:
        if block_hash is None:
            return self.block
        for b in range(self.block, -1, -1):  # small chains only; fine for tests
            if self.hash_of(b) == block_hash:
                return b
        raise bt.ChainError(f"unknown block hash {block_hash}")

    def take_drop(self) -> bool:
        if self._drops > 0:
            self._drops -= 1
            return True
        return False


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


_SUPPORTED_CALLS = {("SubtensorModule", "set_mechanism_weights"), ("Commitments", "set_commitment")}


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
        return self.state

    def _subnet(self, netuid: Any) -> Optional[FakeSubnet]:
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

    async def block_hash(self, block: Optional[int] = None) -> str:
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
        return max(0, self._enter("finalized_block_number").block - 2)

    async def block_time(self) -> float:
        return self._enter("block_time").block_time

    async def spec_version(self) -> int:
        self._enter("spec_version")
        return 1

    async def get_block(self, block_number: Optional[int] = None, block_hash: Optional[str] = None) -> Optional[dict]:
        state = self._enter("get_block")
        number = state.block_of(block_hash) if block_hash else (state.block if block_number is None else block_number)
        if number > state.block:
            return None
        return {"header": {"number": number, "hash": state.hash_of(number),
                           "parentHash": state.hash_of(max(0, number - 1))}, "extrinsics": []}

    async def query(self, module: str, storage_function: str, params: Optional[list] = None,
                    block_hash: Optional[str] = None) -> Any:
        state = self._enter(f"query:{module}.{storage_function}")
        state.block_of(block_hash)
        params = list(params or [])
        key = (module, storage_function)
        subnet = self._subnet(params[0]) if params else None
        if key == ("SubtensorModule", "Uids"):
            return subnet.uid_of(params[1]) if subnet else None
        if key == ("Commitments", "CommitmentOf"):
            return subnet.commitments.get(params[1]) if subnet else None
        if key == ("Timestamp", "Now"):
            return int(state.block * state.block_time * 1000)
        if subnet is None:
            return None
        scalars = {
            ("SubtensorModule", "CommitRevealWeightsEnabled"): subnet.commit_reveal,
            ("SubtensorModule", "WeightsSetRateLimit"): subnet.weights_rate_limit,
            ("SubtensorModule", "WeightsVersionKey"): subnet.weights_version_key,
            ("SubtensorModule", "MinAllowedWeights"): subnet.min_allowed_weights,
            ("SubtensorModule", "MaxWeightsLimit"): subnet.max_weights_limit,
            ("SubtensorModule", "SubnetEpochConsensus"): "Yuma",
            ("SubtensorModule", "Tempo"): subnet.tempo,
            ("SubtensorModule", "LastUpdate"): [n.last_update for n in subnet.neurons],
            ("SubtensorModule", "ValidatorPermit"): [n.validator_permit for n in subnet.neurons],
        }
        if key in scalars:
            return scalars[key]
        raise bt.ChainError(f"fake substrate does not model storage {module}.{storage_function}")

    async def map_has_entries(self, module: str, storage_function: str, params: list,
                              block_hash: Optional[str] = None) -> bool:
        return bool(await self.query_map(module, storage_function, params, block_hash))

    async def query_map(self, module: str, storage_function: str, params: Optional[list] = None,
                        block_hash: Optional[str] = None) -> list[tuple[Any, Any]]:
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
        raise bt.ChainError(f"fake substrate does not model storage map {module}.{storage_function}")

    async def query_batch(self, module: str, storage_function: str, param_sets: list[list],
                          block_hash: Optional[str] = None) -> list[Any]:
        return [await self.query(module, storage_function, p, block_hash) for p in param_sets]

    async def runtime_call(self, api: str, method: str, params: list, block_hash: Optional[str] = None) -> Any:
        state = self._enter(f"runtime:{api}.{method}")
        await state.maybe_hang()
        block = state.block_of(block_hash)
        if (api, method) != ("SubnetInfoRuntimeApi", "get_metagraph"):
            raise bt.ChainError(f"fake substrate does not model runtime API {api}.{method}")
        subnet = self._subnet(params[0])
        if subnet is None:
            return None
        return _metagraph_record(subnet, block)

    async def constant(self, module: str, name: str) -> Any:
        state = self._enter(f"constant:{module}.{name}")
        if (module, name) == ("Aura", "SlotDuration"):
            return int(state.block_time * 1000)
        raise bt.ChainError(f"fake substrate does not model constant {module}.{name}")

    async def decode_scale(self, type_string: str, data: Any) -> Any:
        raise NotImplementedError("fake substrate: decode_scale is not modelled")

    async def blocks(self, *, finalized: bool = False) -> AsyncIterator[dict]:
        raise NotImplementedError("fake substrate: block subscriptions are not modelled")
        yield {}  # pragma: no cover

    async def events(self, block_hash: Optional[str] = None) -> list[dict]:
        self._enter("events")
        return []

    # calls and fees ------------------------------------------------------------------

    async def compose(self, call) -> FakeComposedCall:
        self._enter("compose")
        module, function, params = call
        if (module, function) not in _SUPPORTED_CALLS:
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

    async def submit(self, call, keypair, *, nonce: Optional[int] = None, period: Optional[int] = 64,
                     wait_for_inclusion: bool = True, wait_for_finalization: bool = True) -> bt.ExtrinsicResult:
        state = self._enter("submit")
        if not isinstance(call, FakeComposedCall):
            raise bt.ChainError(f"submit expects a composed call, got {type(call).__name__}")
        signature = keypair.sign(call.data)
        if hasattr(keypair, "verify") and not keypair.verify(call.data, signature):
            return _failure(state, "BadProof", "bad signature")
        signer = keypair.ss58_address
        state.nonces[signer] += 1
        state.block += 1  # the extrinsic lands in the next block
        entry = {"module": call.module, "function": call.function, "params": call.params,
                 "signer": signer, "block": state.block, "success": False}
        state.extrinsics.append(entry)
        if call.function == "set_mechanism_weights":
            error = _apply_weights(state, call.params, signer)
        else:
            error = _apply_commitment(state, call.params, signer)
        if error is not None:
            entry["error"] = error[0]
            return _failure(state, *error)
        entry["success"] = True
        return bt.ExtrinsicResult(success=True, message="Success", block_hash=state.hash_of(state.block),
                                  extrinsic_id=f"{state.block}-0001", fee=bt.Balance.from_rao(1_000_000))

    async def submit_signed(self, extrinsic, keypair, **kwargs) -> bt.ExtrinsicResult:
        raise NotImplementedError("fake substrate: pre-signed extrinsics are not modelled")

    async def sign_extrinsic(self, call, keypair, *, nonce: int, period: int) -> tuple[bytes, str]:
        raise NotImplementedError("fake substrate: MEV-shielded signing is not modelled")

    async def find_extrinsic(self, extrinsic_hash: str, block_hash: str):
        return None

    async def mev_next_key(self) -> Optional[bytes]:
        return None

    async def prepare(self, call, **kwargs):
        raise NotImplementedError("fake substrate: out-of-process signing is not modelled")

    async def submit_signature(self, unsigned, signature, **kwargs):
        raise NotImplementedError("fake substrate: out-of-process signing is not modelled")

    def multisig_account(self, signatories: list[str], threshold: int):
        raise NotImplementedError("fake substrate: multisig is not modelled")

    async def submit_multisig(self, call, keypair, multisig_account, **kwargs):
        raise NotImplementedError("fake substrate: multisig is not modelled")


# --- chain rules -------------------------------------------------------------------------

# The runtime's own error texts, from the SDK's generated catalog (what a real node reports).
_ERROR_TEXT = {info.name: info.docs for info in ERRORS.values() if info.docs}


def _failure(state: FakeChainState, name: str, text: str | None = None) -> bt.ExtrinsicResult:
    text = text or _ERROR_TEXT.get(name, name)
    return bt.ExtrinsicResult(success=False, message=text, block_hash=state.hash_of(state.block),
                              extrinsic_id=f"{state.block}-0001", error=bt.ChainError(text, name))


def _apply_weights(state: FakeChainState, params: dict, signer: str) -> Optional[tuple[str]]:
    subnet = state.subnets.get(int(params["netuid"]))
    if subnet is None or int(params.get("mecid", 0)) != 0:
        return ("MechanismDoesNotExist",)
    uid = subnet.uid_of(signer)
    if uid is None:
        return ("HotKeyNotRegisteredInSubNet",)
    neuron = subnet.neurons[uid]
    if neuron.last_update > 0 and state.block - neuron.last_update < subnet.weights_rate_limit:
        return ("SettingWeightsTooFast",)
    if int(params["version_key"]) < subnet.weights_version_key:
        return ("IncorrectWeightVersionKey",)
    dests, values = list(params["dests"]), list(params["weights"])
    if len(dests) != len(values):
        return ("WeightVecNotEqualSize",)
    n = len(subnet.neurons)
    if any(not 0 <= int(d) < n for d in dests) or any(not 0 <= int(v) <= U16_MAX for v in values):
        return ("UidVecContainInvalidOne",)
    subnet.weights[uid] = [(int(d), int(v)) for d, v in zip(dests, values)]
    neuron.last_update = state.block
    return None


def _apply_commitment(state: FakeChainState, params: dict, signer: str) -> Optional[tuple[str]]:
    subnet = state.subnets.get(int(params["netuid"]))
    if subnet is None or subnet.uid_of(signer) is None:
        return ("AccountNotAllowedCommit",)
    fields = list((params.get("info") or {}).get("fields") or [])
    if len(fields) > 3:
        return ("TooManyFieldsInCommitmentInfo",)
    stored = []
    for entry in fields:
        (variant, value), = dict(entry).items()
        raw = bytes(value) if isinstance(value, (bytes, bytearray)) else bytes.fromhex(str(value).removeprefix("0x"))
        if not variant.startswith("Raw") or int(variant[3:]) != len(raw) or len(raw) > 128:
            return ("TooManyFieldsInCommitmentInfo", f"malformed commitment field {variant} ({len(raw)} bytes)")
        stored.append({variant: "0x" + raw.hex()})
    subnet.commitments[signer] = {"deposit": 0, "block": state.block, "info": {"fields": stored}}
    return None


def _metagraph_record(subnet: FakeSubnet, block: int) -> dict:
    """`SubnetInfoRuntimeApi.get_metagraph` as the SDK's RPC backend decodes it."""
    neurons = subnet.neurons
    return {
        "netuid": subnet.netuid,
        "name": list(f"fake-{subnet.netuid}".encode()),
        "symbol": list("α".encode()),
        "block": block,
        "tempo": subnet.tempo,
        "last_step": block - block % subnet.tempo,
        "blocks_since_last_step": block % subnet.tempo,
        "owner_hotkey": neurons[0].hotkey if neurons else "",
        "owner_coldkey": neurons[0].coldkey if neurons else "",
        "network_registered_at": 0,
        "num_uids": len(neurons),
        "max_uids": 256,
        "hotkeys": [n.hotkey for n in neurons],
        "coldkeys": [n.coldkey for n in neurons],
        "active": [True for _ in neurons],
        "validator_permit": [n.validator_permit for n in neurons],
        "last_update": [n.last_update for n in neurons],
        "block_at_registration": [n.registered_at for n in neurons],
        "alpha_stake": [n.stake_rao for n in neurons],
        "tao_stake": [0 for _ in neurons],
        "total_stake": [n.stake_rao for n in neurons],
        "rank": [0 for _ in neurons],
        "trust": [0 for _ in neurons],
        "consensus": [0 for _ in neurons],
        "incentives": [0 for _ in neurons],
        "dividends": [0 for _ in neurons],
        "pruning_score": [0 for _ in neurons],
        "emission": [0 for _ in neurons],
        "axons": [{"ip": 0, "port": 0, "ip_type": 4} for _ in neurons],
        "identities": [None for _ in neurons],
        "tao_in": 0,
        "alpha_in": 0,
        "moving_price": {"bits": 0},
        "identity": None,
    }
