"""Per-document results of scoring one model on one round's documents."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATUS_OK = 0
STATUS_TRUNCATED = 1  # scored, but the document was cut at the competition's sequence length
STATUS_FAILED = 2  # non-finite loss or the batch could not be scored; counts as a loss


@dataclass
class DocLosses:
    """Exact per-document sums; any aggregate (per-token loss, bits per byte) derives from these."""

    nll_sum: np.ndarray  # float64, summed negative log-likelihood (nats) of predicted tokens
    n_tokens: np.ndarray  # int64, predicted tokens per document
    n_bytes: np.ndarray  # int64, UTF-8 bytes per document
    status: np.ndarray  # int8, STATUS_* per document

    def __len__(self) -> int:
        return len(self.nll_sum)

    def per_token(self) -> np.ndarray:
        """Mean loss per predicted token for each document; NaN for failed or empty documents."""
        with np.errstate(divide="ignore", invalid="ignore"):
            loss = self.nll_sum / self.n_tokens
        bad = (self.status == STATUS_FAILED) | (self.n_tokens <= 0) | ~np.isfinite(loss)
        return np.where(bad, np.nan, loss)

    def bits_per_byte(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            bpb = self.nll_sum / (np.log(2) * self.n_bytes)
        bad = (self.status == STATUS_FAILED) | (self.n_bytes <= 0) | ~np.isfinite(bpb)
        return np.where(bad, np.nan, bpb)

    def to_bytes(self) -> bytes:
        """Compact form for the validator's database (float32 nll, int32 counts, int8 status)."""
        n = len(self)
        header = np.array([n], dtype=np.int64).tobytes()
        return (
            header
            + self.nll_sum.astype("<f8").tobytes()
            + self.n_tokens.astype("<i4").tobytes()
            + self.n_bytes.astype("<i4").tobytes()
            + self.status.astype("<i1").tobytes()
        )

    @classmethod
    def from_bytes(cls, blob: bytes) -> "DocLosses":
        n = int(np.frombuffer(blob[:8], dtype="<i8")[0])
        o = 8
        nll = np.frombuffer(blob[o : o + 8 * n], dtype="<f8").astype(np.float64); o += 8 * n
        tok = np.frombuffer(blob[o : o + 4 * n], dtype="<i4").astype(np.int64); o += 4 * n
        nb = np.frombuffer(blob[o : o + 4 * n], dtype="<i4").astype(np.int64); o += 4 * n
        st = np.frombuffer(blob[o : o + n], dtype="<i1").astype(np.int8)
        return cls(nll, tok, nb, st)


@dataclass
class ScoreOutcome:
    """What a worker returns for one model: losses, or the reason it could not be scored."""

    losses: DocLosses | None
    error: str = ""  # '' when scored; else a short code such as 'timeout', 'crashed', 'oom', 'rejected:...'
    detail: str = ""
    seconds: float = 0.0
    tokens_per_s: float = 0.0
    sliced: bool = False  # scored a slice of layers at a time (subnet/eval/sliced.py)
