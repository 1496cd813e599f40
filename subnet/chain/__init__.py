"""Chain access: the `Chain` protocol and its types. Adapters: `bittensor` (real) and `local` (SQLite)."""

from subnet.chain.base import (
    Chain,
    ChainError,
    Commitment,
    Metagraph,
    Neuron,
    WeightsResult,
)

__all__ = ["Chain", "ChainError", "Commitment", "Metagraph", "Neuron", "WeightsResult"]
