"""What the validator and miner need from a chain, and nothing more.

Two implementations satisfy `Chain`: `subnet.chain.bittensor.BittensorChain` (the real chain,
through the bittensor v11 SDK) and `subnet.chain.local.LocalChain` (an embedded SQLite chain for
devnet and tests). Code above this layer never imports bittensor directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


# Codes every adapter uses, so callers branch on them and never on an SDK's exception types:
#   rate_limited      the chain or the RPC endpoint refused for now; `retry_after_s` when it said how long
#   invalid_argument  the chain's rules refuse these arguments; resending them cannot help
#   runtime_mismatch  the runtime and the SDK disagree (storage missing, a value that does not decode)
#   unknown_outcome   a write was sent but its fate is unknown: it may have landed, never resend it blindly
#   unknown_block     the block does not exist (yet), or has no final hash
#   unavailable       the chain (or the local chain's database) cannot be reached or is locked
#   connection, timeout, closed, no_wallet, wallet_locked, not_registered, no_permit, ...
class ChainError(RuntimeError):
    """A chain call failed; `code` is a short machine-readable reason (e.g. 'rate_limited').

    `retry_after_s` is how long the chain or the RPC endpoint asked us to wait, when it said."""

    def __init__(self, message: str, code: str = "chain_error", retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Neuron:
    """A registered hotkey. `block_at_registration` is when its current registration began.

    A commitment can be older than that: commitments are stored per hotkey and survive
    deregistration. We keep the commitment's own block as the model's birth (its age) anyway,
    because (1) it is what every validator reads identically from the chain, (2) it is the proof of
    priority that copy detection needs (the first commitment of a content hash owns it, and a
    returning miner's weights were public while it was away), and (3) an older birth only *lowers*
    the earlier model's advantage, which decays with age, so a returning hotkey gains nothing by it.
    What a re-registration does reset is the hotkey's smoothed weight (see
    `subnet.validator.weighting.new_registrations`)."""

    uid: int
    hotkey: str
    coldkey: str
    stake: float
    validator_permit: bool
    last_update: int = 0  # block of the neuron's last weights update (or weights commit)
    block_at_registration: int = 0
    # The last epoch's Yuma outputs (`subnet.scoring.yuma`): what the validators' consensus weights.
    incentive: float = 0.0
    consensus: float = 0.0
    validator_trust: float = 0.0


@dataclass(frozen=True)
class Metagraph:
    netuid: int
    block: int
    neurons: tuple[Neuron, ...]

    def uid_of(self, hotkey: str) -> int | None:
        for n in self.neurons:
            if n.hotkey == hotkey:
                return n.uid
        return None

    @property
    def hotkeys(self) -> list[str]:
        return [n.hotkey for n in self.neurons]

    def consensus_by_uid(self) -> dict[int, float]:
        """The chain's consensus weight per uid (the clipping threshold of every validator's weights)."""
        return {n.uid: n.consensus for n in self.neurons}

    def incentive_by_hotkey(self) -> dict[str, float]:
        """What the validators' consensus pays each hotkey: the models other validators weight."""
        return {n.hotkey: n.incentive for n in self.neurons if n.incentive > 0}


@dataclass(frozen=True)
class Commitment:
    """A hotkey's current commitment string and the block it was made in (the model's birth)."""

    hotkey: str
    block: int
    data: str


@dataclass(frozen=True)
class WeightsResult:
    """A weight submission's outcome. With commit-reveal on, success means *committed*: the chain
    applies the weights only at `reveal_round` (a drand round on the real chain, a block on the
    local one), and may still drop them then, so a commit is never reported as weights set."""

    success: bool
    message: str = ""
    code: str = ""  # '' on success; e.g. 'rate_limited', 'not_registered', 'invalid_argument', 'unknown_outcome'
    block: int | None = None
    reveal_round: int | None = None  # set when the weights were committed, not set in the clear
    retry_after_s: float | None = None  # with 'rate_limited': how long to wait, when known

    @property
    def committed(self) -> bool:
        return self.success and self.reveal_round is not None


@runtime_checkable
class Chain(Protocol):
    """A subnet on some chain, seen by one signing hotkey (or read-only when there is none)."""

    netuid: int

    def current_block(self) -> int: ...

    def block_hash(self, block: int) -> str:
        """Hex hash ('0x...') of a past, *finalized* block (a reorg cannot change it): the seed of a
        round's data. A block that does not exist (yet) raises ChainError('unknown_block')."""
        ...

    def metagraph(self) -> Metagraph: ...

    def commitments(self) -> list[Commitment]:
        """Every hotkey's latest commitment on the subnet, in one bulk read."""
        ...

    def weight_holders(self) -> dict[str, float]:
        """Who holds the weight: registered hotkey -> its share of the miners' incentive in the chain's
        last epoch (Yuma consensus over the validators' applied weights; shares sum to 1). Hotkeys
        paid nothing are absent, so it is empty before any epoch has paid anyone. On the real chain
        this lags the validators' weights by up to one tempo; committed weights count once revealed."""
        ...

    def commit(self, data: str) -> int:
        """Publish `data` as this hotkey's commitment; returns the block it landed in."""
        ...

    def set_weights(self, uids: Sequence[int], weights: Sequence[float], version_key: int) -> WeightsResult:
        """Refusals come back as a failed result with a code; only a chain that cannot be used at all
        (e.g. the local chain's database is locked) raises ChainError. The weights are fitted to the chain's
        minimum weight count (see `subnet.chain.weights`); on a commit-reveal subnet they are
        committed and `reveal_round` says when the chain applies them."""
        ...

    def weights_rate_limit(self) -> int:
        """Minimum number of blocks between two weight settings by the same hotkey."""
        ...

    def close(self) -> None: ...
