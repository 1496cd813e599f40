"""What the validator and miner need from a chain, and nothing more.

Two implementations satisfy `Chain`: `subnet.chain.bittensor.BittensorChain` (the real chain,
through the bittensor v11 SDK) and `subnet.chain.local.LocalChain` (an embedded SQLite chain for
devnet and tests). Code above this layer never imports bittensor directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable


class ChainError(RuntimeError):
    """A chain call failed; `code` is a short machine-readable reason (e.g. 'rate_limited')."""

    def __init__(self, message: str, code: str = "chain_error") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Neuron:
    uid: int
    hotkey: str
    coldkey: str
    stake: float
    validator_permit: bool
    last_update: int = 0  # block of the neuron's last weights update


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


@dataclass(frozen=True)
class Commitment:
    """A hotkey's current commitment string and the block it was made in (the model's birth)."""

    hotkey: str
    block: int
    data: str


@dataclass(frozen=True)
class WeightsResult:
    success: bool
    message: str = ""
    code: str = ""  # '' on success; e.g. 'rate_limited', 'not_registered', 'rejected', 'timeout'
    block: int | None = None


@runtime_checkable
class Chain(Protocol):
    """A subnet on some chain, seen by one signing hotkey (or read-only when there is none)."""

    netuid: int

    def current_block(self) -> int: ...

    def block_hash(self, block: int) -> str:
        """Hex hash ('0x...') of a past block; deterministic, the seed of a round's data."""
        ...

    def metagraph(self) -> Metagraph: ...

    def commitments(self) -> list[Commitment]:
        """Every hotkey's latest commitment on the subnet, in one bulk read."""
        ...

    def commit(self, data: str) -> int:
        """Publish `data` as this hotkey's commitment; returns the block it landed in."""
        ...

    def set_weights(self, uids: Sequence[int], weights: Sequence[float], version_key: int) -> WeightsResult: ...

    def weights_rate_limit(self) -> int:
        """Minimum number of blocks between two weight settings by the same hotkey."""
        ...

    def close(self) -> None: ...
