"""The evaluation engine: exact per-document losses, batched on GPU, one worker process per model."""

from subnet.eval.types import STATUS_FAILED, STATUS_OK, STATUS_TRUNCATED, DocLosses, ScoreOutcome

__all__ = ["DocLosses", "STATUS_FAILED", "STATUS_OK", "STATUS_TRUNCATED", "ScoreOutcome"]
