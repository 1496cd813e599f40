"""The one error a model is rejected with. Its `reason` is a short code shown in scores."""

from __future__ import annotations


class ModelRejected(Exception):
    """A miner's model cannot compete. `reason` is a stable code; the message explains it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.detail = message
