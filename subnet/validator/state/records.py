"""The typed rows the state hands out, the status vocabularies, and the row mappers."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

# Model (commitment) statuses
MODEL_PENDING = "pending"  # parsed, not yet downloaded
MODEL_VERIFIED = "verified"  # downloaded, hash and constraints checked
MODEL_FAILED = "failed"  # permanently rejected for this commitment (reason says why)
MODEL_RETRY = "retry"  # a transient failure; tried again next round
MODEL_INVALID = "invalid"  # the commitment string did not parse

# Round statuses
ROUND_STARTED = "started"
ROUND_SCORED = "scored"  # results and EMA committed; weights not yet set
ROUND_WEIGHTS_SET = "weights_set"
ROUND_DONE = "done"  # scored, weights not set in this round (cadence, dry run or refused)
ROUND_DISCARDED = "discarded"
ROUND_INTERRUPTED = "interrupted"  # stopped mid-way with its seed and scores kept; the next round resumes it
ROUND_FAILED = "failed"

# Weight-setting attempt statuses
ATTEMPT_INTENT = "intent"  # recorded before calling the chain
ATTEMPT_SUCCESS = "success"
ATTEMPT_FAILED = "failed"
ATTEMPT_SKIPPED = "skipped"  # refused locally (all-zero or NaN weights)
ATTEMPT_UNKNOWN = "unknown"  # the daemon died between intent and outcome; never re-sent


class StateError(RuntimeError):
    """The state database is unusable (e.g. written by a newer version)."""


class StateBusy(StateError):
    """Another process held the write lock for longer than the bounded wait; nothing was written."""


@dataclass(frozen=True)
class ModelRecord:
    id: int
    hotkey: str
    uid: int | None
    competition: str | None
    ref: str
    block: int
    parse_error: str | None
    status: str
    reason: str | None
    detail: str | None
    model_dir: str | None
    content_hash: str | None
    attempts: int
    last_round: int | None
    transient_failures: int = 0  # consecutive failures that were not the miner's fault
    retry_after: float | None = None  # unix time before which a parked model is not scheduled

    def parked(self, now: float | None = None) -> bool:
        """Whether repeated transient failures put this model off until `retry_after`."""
        return self.retry_after is not None and self.retry_after > (time.time() if now is None else now)


@dataclass(frozen=True)
class RoundRecord:
    id: int
    block: int
    seed: str | None
    status: str
    error: str | None
    started_at: float
    finished_at: float | None
    n_due: int | None = None  # models scheduled for evaluation (None: recorded before migration 8)
    n_evaluated: int | None = None  # of those, how many got a verdict (scored, or failed for good)
    window: int | None = None  # the seed block whose documents it scored (None: before migration 9)


@dataclass(frozen=True)
class ScoredModel:
    """One model's scoring in a round, kept as soon as it is known so a stopped round can resume."""

    competition: str
    hotkey: str
    model_id: int | None
    error: str = ""
    detail: str = ""
    seconds: float = 0.0
    tokens_per_s: float = 0.0
    losses: bytes | None = None


@dataclass(frozen=True)
class ResultRow:
    """One model's outcome in one round; `losses` is `DocLosses.to_bytes()` (or None)."""

    competition: str
    hotkey: str
    uid: int | None
    model_id: int | None
    mean_loss: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n_docs: int = 0
    tokens_per_s: float = 0.0
    seconds: float = 0.0
    error: str = ""
    win_rate: float | None = None
    wins: int | None = None
    copy_of: str | None = None
    losses: bytes | None = None


@dataclass(frozen=True)
class VerdictRow:
    competition: str
    earlier: str
    later: str
    eps: float
    diff: float
    ci_low: float
    ci_high: float
    later_wins: bool


@dataclass(frozen=True)
class Registration:
    """One stint of a hotkey at a uid, from the first to the last recorded round that saw it."""

    hotkey: str
    uid: int
    first_round: int
    first_block: int
    last_round: int
    last_block: int


@dataclass(frozen=True)
class AttemptRecord:
    id: int
    round_id: int
    block: int | None
    uids: list[int]
    weights: list[float]
    status: str
    message: str | None
    created_at: float
    reveal_round: int | None = None  # a commit (commit-reveal subnet): the chain applies it at this round
    code: str | None = None  # the chain's code for a refusal or failure

    @property
    def committed(self) -> bool:
        return self.status == ATTEMPT_SUCCESS and self.reveal_round is not None


# meta key: the id of the latest round whose registrations were recorded
_REGISTRATIONS_ROUND = "registrations_round"


def _finite_or_none(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if x == x and x not in (float("inf"), float("-inf")) else None


def _registration(r: sqlite3.Row) -> Registration:
    return Registration(r["hotkey"], int(r["uid"]), int(r["first_round"]), int(r["first_block"]),
                        int(r["last_round"]), int(r["last_block"]))


def _model(r: sqlite3.Row) -> ModelRecord:
    return ModelRecord(
        id=int(r["id"]), hotkey=r["hotkey"], uid=r["uid"], competition=r["competition"], ref=r["ref"],
        block=int(r["block"]), parse_error=r["parse_error"], status=r["status"], reason=r["reason"],
        detail=r["detail"], model_dir=r["model_dir"], content_hash=r["content_hash"], attempts=int(r["attempts"]),
        last_round=r["last_round"],
        transient_failures=int(r["transient_failures"] or 0) if "transient_failures" in r.keys() else 0,
        retry_after=r["retry_after"] if "retry_after" in r.keys() else None,
    )


def _round(r: sqlite3.Row) -> RoundRecord:
    keys = r.keys()
    return RoundRecord(int(r["id"]), int(r["block"]), r["seed"], r["status"], r["error"], float(r["started_at"]),
                       r["finished_at"], r["n_due"] if "n_due" in keys else None,
                       r["n_evaluated"] if "n_evaluated" in keys else None,
                       r["window_block"] if "window_block" in keys else None)


def _result(r: sqlite3.Row) -> ResultRow:
    return ResultRow(
        competition=r["competition"], hotkey=r["hotkey"], uid=r["uid"], model_id=r["model_id"],
        mean_loss=r["mean_loss"], ci_low=r["ci_low"], ci_high=r["ci_high"], n_docs=r["n_docs"] or 0,
        tokens_per_s=r["tokens_per_s"] or 0.0, seconds=r["seconds"] or 0.0, error=r["error"] or "",
        win_rate=r["win_rate"], wins=r["wins"], copy_of=r["copy_of"],
        losses=r["losses"] if "losses" in r.keys() else None,
    )
