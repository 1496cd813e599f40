"""The chain behind `tests.fakes.substrate`: storage, epochs and the runtime's rules, from the pallets.

Rules follow `opentensor/subtensor` (pallets `subtensor` and `commitments`), in the order the
runtime checks them, with the runtime's error names (the SDK maps them to codes):
- plaintext `set_mechanism_weights` on a commit-reveal subnet: `CommitRevealEnabled`;
- weights (`internal_set_weights`): registered, stake >= `StakeThreshold`, version key, rate limit
  (`LastUpdate`), validator permit (a single self-weight is exempt), no duplicates, valid uids,
  `min(subnet_n, MinAllowedWeights)` entries zeros included (`WeightVecLengthIsLow`);
- timelocked commits: commit-reveal on, version 4, registered, rate limit
  (`CommittingWeightsTooFast`), fewer than 10 unrevealed per hotkey and epoch
  (`TooManyUnrevealedCommits`); the commit sets `LastUpdate`. Permit and stake are checked only
  at reveal, which needs a drand pulse the fake never has: commits expire unrevealed, as on a
  chain whose drand feed stalls;
- commitments: registered, at most 3 fields, `Raw0..Raw128`, and a space quota per hotkey and
  epoch (`MaxSpace`, each commitment costing at least 100 bytes): `SpaceLimitExceeded`.

Epochs are the stateful counter the SDK's commit-reveal preflight reads: `SubnetEpochIndex`,
`LastEpochBlock`, `BlocksSinceLastStep`, `PendingEpochAt`, one epoch every `tempo + 1` blocks.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import bittensor as bt
from bittensor._generated.errors import ERRORS

U16_MAX = 65535
RAO_PER_TAO = 10**9
COMMIT_REVEAL_VERSION = 4  # the runtime's get_commit_reveal_weights_version()
MAX_UNREVEALED_COMMITS = 10
MIN_COMMITMENT_SPACE = 100
DEFAULT_MAX_SPACE = 3100
RUNTIME_MIN_ALLOWED_WEIGHTS = 1024  # SubtensorInitialMinAllowedWeights


@dataclass
class FakeNeuron:
    hotkey: str
    coldkey: str
    stake_rao: int
    validator_permit: bool
    last_update: int = 0
    registered_at: int = 0
    # The last epoch's Yuma outputs as the runtime stores them: PerU16 fractions (65535 = 1.0).
    consensus_u16: int = 0
    incentive_u16: int = 0


@dataclass
class FakeSubnet:
    netuid: int
    weights_rate_limit: int = 100
    weights_version_key: int = 0
    commit_reveal: bool = True  # the runtime's default on new subnets
    reveal_period_epochs: int = 1
    min_allowed_weights: int = RUNTIME_MIN_ALLOWED_WEIGHTS
    max_weights_limit: int = U16_MAX
    tempo: int = 360
    owner_hotkey: str = ""
    neurons: list[FakeNeuron] = field(default_factory=list)
    # hotkey -> Commitments.CommitmentOf record, in the decoded shape the SDK reads.
    commitments: dict[str, dict] = field(default_factory=dict)
    # hotkey -> (epoch, used bytes): Commitments.UsedSpaceOf
    used_space: dict[str, tuple[int, int]] = field(default_factory=dict)
    # uid -> [(dest uid, u16 value)] as the chain stores them.
    weights: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    # epoch -> [(hotkey, commit block, ciphertext, reveal round)]: TimelockedWeightCommits
    timelocked_commits: dict[int, list[tuple[str, int, bytes, int]]] = field(default_factory=dict)
    # storage names this runtime lacks (an older or newer runtime than the SDK's)
    missing_storage: set[str] = field(default_factory=set)

    def uid_of(self, hotkey: str) -> int | None:
        for uid, n in enumerate(self.neurons):
            if n.hotkey == hotkey:
                return uid
        return None

    def epoch(self, block: int) -> int:
        return block // (self.tempo + 1)

    def last_epoch_block(self, block: int) -> int:
        return self.epoch(block) * (self.tempo + 1)

    def expire_commits(self, block: int) -> None:
        """Commits older than the reveal epoch are dropped (never revealed: no drand pulse here)."""
        reveal_epoch = self.epoch(block) - self.reveal_period_epochs
        for epoch in [e for e in self.timelocked_commits if e < reveal_epoch]:
            del self.timelocked_commits[epoch]

    def unrevealed(self, hotkey: str | None = None) -> list[tuple[str, int, bytes, int]]:
        return [c for commits in self.timelocked_commits.values() for c in commits
                if hotkey is None or c[0] == hotkey]


class FakeConnectionDropped(ConnectionError):
    """What the fake raises where a real websocket would have dropped."""


class FakeChainState:
    """The chain itself: blocks, subnets, neurons, commitments, weights, and a log of extrinsics."""

    def __init__(self, block: int = 1000, block_time: float = 12.0) -> None:
        self.block = block
        self.block_time = block_time
        self.finality_lag = 2  # blocks between the head and the last finalized block
        self.stake_threshold_rao = 0  # StakeThreshold (runtime default 0)
        self.max_space = DEFAULT_MAX_SPACE
        self.subnets: dict[int, FakeSubnet] = {}
        self.extrinsics: list[dict] = []  # every submitted call, successful or not
        self.calls: Counter[str] = Counter()  # Substrate method -> times called
        self.connections = 0  # connections opened so far
        self._drops = 0
        self._hangs = 0
        self._lost_outcomes = 0
        self._faults: list[list[Any]] = []  # [name prefix, exception, times left]
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
        for subnet in self.subnets.values():
            subnet.expire_commits(self.block)
        return self.block

    def drop_connections(self, times: int = 1) -> None:
        """The next `times` calls on any open connection fail as a dropped websocket would, and that
        connection stays dead: only a fresh connection works again."""
        self._drops += int(times)

    def clear_faults(self) -> None:
        self._drops = self._hangs = self._lost_outcomes = 0
        self._faults.clear()

    def hang_requests(self, times: int = 1) -> None:
        """The next `times` block-number or runtime-API reads never answer (a stalled node)."""
        self._hangs += int(times)

    def fail(self, name_prefix: str, error: BaseException, times: int = 1) -> None:
        """The next `times` Substrate calls whose name starts with `name_prefix` (e.g. 'submit',
        'query:SubtensorModule.Uids', 'runtime:') raise `error`, as the real transport would."""
        self._faults.append([name_prefix, error, int(times)])

    def refuse_requests(self, times: int = 1, retry_after: str | None = "30") -> None:
        """The RPC endpoint refuses the next `times` calls under its rate-limit policy."""
        error = bt.RpcPolicyError("RPC endpoint rate limited this source (HTTP 429)", status_code=429,
                                  retry_after=retry_after, policy="rate", reason="too many requests")
        self.fail("", error, times)

    def lose_outcomes(self, times: int = 1) -> None:
        """The next `times` submissions land, but the watch ends before their outcome is known."""
        self._lost_outcomes += int(times)

    def take_lost_outcome(self) -> bool:
        if self._lost_outcomes > 0:
            self._lost_outcomes -= 1
            return True
        return False

    def take_fault(self, name: str) -> BaseException | None:
        for fault in self._faults:
            if name.startswith(fault[0]) and fault[2] > 0:
                fault[2] -= 1
                return fault[1]
        return None

    async def maybe_hang(self) -> None:
        if self._hangs > 0:
            self._hangs -= 1
            await asyncio.sleep(3600)

    def hash_of(self, block: int) -> str:
        return "0x" + hashlib.sha256(f"fake-subtensor:{block}".encode()).hexdigest()

    def block_of(self, block_hash: str | None) -> int:
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


# --- chain rules -------------------------------------------------------------------------

# The runtime's own error texts, from the SDK's generated catalog (what a real node reports).
ERROR_TEXT = {info.name: info.docs for info in ERRORS.values() if info.docs}


def apply_weights(state: FakeChainState, params: dict, signer: str) -> tuple[str, ...] | None:
    subnet = state.subnets.get(int(params["netuid"]))
    if subnet is not None and subnet.commit_reveal:
        return ("CommitRevealEnabled",)
    dests, values = [int(d) for d in params["dests"]], [int(v) for v in params["weights"]]
    if len(dests) != len(values):
        return ("WeightVecNotEqualSize",)
    if subnet is None or int(params.get("mecid", 0)) != 0:
        return ("MechanismDoesNotExist",)
    n = len(subnet.neurons)
    if len(dests) > n:
        return ("UidsLengthExceedUidsInSubNet",)
    uid = subnet.uid_of(signer)
    if uid is None:
        return ("HotKeyNotRegisteredInSubNet",)
    neuron = subnet.neurons[uid]
    if signer != subnet.owner_hotkey and neuron.stake_rao < state.stake_threshold_rao:
        return ("NotEnoughStakeToSetWeights",)
    if subnet.weights_version_key and int(params["version_key"]) < subnet.weights_version_key:
        return ("IncorrectWeightVersionKey",)
    if neuron.last_update > 0 and state.block - neuron.last_update < subnet.weights_rate_limit:
        return ("SettingWeightsTooFast",)
    self_weight = len(values) == 1 and dests[0] == uid
    if not (self_weight or neuron.validator_permit or signer == subnet.owner_hotkey):
        return ("NeuronNoValidatorPermit",)
    if len(set(dests)) != len(dests):
        return ("DuplicateUids",)
    if any(not 0 <= d < n for d in dests) or any(not 0 <= v <= U16_MAX for v in values):
        return ("UidVecContainInvalidOne",)
    if not self_weight and len(values) < min(n, subnet.min_allowed_weights):
        return ("WeightVecLengthIsLow",)
    subnet.weights[uid] = list(zip(dests, values))
    neuron.last_update = state.block
    return None


def apply_timelocked_commit(state: FakeChainState, params: dict, signer: str) -> tuple[str, ...] | None:
    subnet = state.subnets.get(int(params["netuid"]))
    if subnet is None or int(params.get("mecid", 0)) != 0:
        return ("MechanismDoesNotExist",)
    if not subnet.commit_reveal:
        return ("CommitRevealDisabled",)
    if int(params["commit_reveal_version"]) != COMMIT_REVEAL_VERSION:
        return ("IncorrectCommitRevealVersion",)
    uid = subnet.uid_of(signer)
    if uid is None:
        return ("HotKeyNotRegisteredInSubNet",)
    neuron = subnet.neurons[uid]
    if neuron.last_update > 0 and state.block - neuron.last_update < subnet.weights_rate_limit:
        return ("CommittingWeightsTooFast",)
    epoch = subnet.epoch(state.block)
    commits = subnet.timelocked_commits.setdefault(epoch, [])
    if sum(1 for c in commits if c[0] == signer) >= MAX_UNREVEALED_COMMITS:
        return ("TooManyUnrevealedCommits",)
    commits.append((signer, state.block, bytes(params["commit"]), int(params["reveal_round"])))
    neuron.last_update = state.block
    return None


def apply_commitment(state: FakeChainState, params: dict, signer: str) -> tuple[str, ...] | None:
    subnet = state.subnets.get(int(params["netuid"]))
    if subnet is None or subnet.uid_of(signer) is None:
        return ("AccountNotAllowedCommit",)
    fields = list((params.get("info") or {}).get("fields") or [])
    if len(fields) > 3:
        return ("TooManyFieldsInCommitmentInfo",)
    stored, size = [], 0
    for entry in fields:
        (variant, value), = dict(entry).items()
        raw = bytes(value) if isinstance(value, (bytes, bytearray)) else bytes.fromhex(str(value).removeprefix("0x"))
        if not variant.startswith("Raw") or int(variant[3:]) != len(raw) or len(raw) > 128:
            return ("TooManyFieldsInCommitmentInfo", f"malformed commitment field {variant} ({len(raw)} bytes)")
        stored.append({variant: "0x" + raw.hex()})
        size += len(raw)
    epoch = subnet.epoch(state.block)
    used_epoch, used = subnet.used_space.get(signer, (epoch, 0))
    used = used if used_epoch == epoch else 0
    required = max(MIN_COMMITMENT_SPACE, size)
    if used + required > state.max_space:
        return ("SpaceLimitExceeded",)
    subnet.used_space[signer] = (epoch, used + required)
    subnet.commitments[signer] = {"deposit": 0, "block": state.block, "info": {"fields": stored}}
    return None


def metagraph_record(subnet: FakeSubnet, block: int) -> dict:
    """`SubnetInfoRuntimeApi.get_metagraph` as the SDK's RPC backend decodes it."""
    neurons = subnet.neurons
    owner = subnet.uid_of(subnet.owner_hotkey) if subnet.owner_hotkey else None
    return {
        "netuid": subnet.netuid,
        "name": list(f"fake-{subnet.netuid}".encode()),
        "symbol": list("α".encode()),
        "block": block,
        "tempo": subnet.tempo,
        "last_step": subnet.last_epoch_block(block),
        "blocks_since_last_step": block - subnet.last_epoch_block(block),
        "owner_hotkey": subnet.owner_hotkey,
        "owner_coldkey": neurons[owner].coldkey if owner is not None else "",
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
        "consensus": [n.consensus_u16 for n in neurons],
        "incentives": [n.incentive_u16 for n in neurons],
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
