"""What `/healthz` means: the validator is doing its job, not merely running.

Unhealthy, each with its reason in the body and in `/metrics`:
  no_recent_round    no round completed within `max_age_s` (or since start, when none ever did)
  nothing_evaluated  the last `idle_rounds` completed rounds each had models due and gave none a
                     verdict (scored, or failed for good): our cache, disk, store or workers are failing
  stale_ema          the newest weights were set from an EMA that no evaluation had refreshed for
                     `idle_rounds` rounds with models due, or for longer than `max_age_s`

Assessed from the rounds table alone (a few small rows), through the status API's read-only
connection, so it answers while another process holds the write lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from subnet.validator.state import (
    ROUND_DONE,
    ROUND_SCORED,
    ROUND_WEIGHTS_SET,
    RoundRecord,
)

NO_RECENT_ROUND = "no_recent_round"
NOTHING_EVALUATED = "nothing_evaluated"
STALE_EMA = "stale_ema"
REASONS = (NO_RECENT_ROUND, NOTHING_EVALUATED, STALE_EMA)
_COMPLETED = (ROUND_SCORED, ROUND_WEIGHTS_SET, ROUND_DONE)


@dataclass(frozen=True)
class HealthPolicy:
    max_age_s: float = 3600.0
    idle_rounds: int = 2


@dataclass
class Health:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)


def assess(rounds: list[RoundRecord], policy: HealthPolicy, now: float, started_at: float) -> Health:
    """`rounds`: the newest rounds, newest first (any status)."""
    completed = [r for r in rounds if r.status in _COMPLETED]
    reasons: list[str] = []
    last = completed[0] if completed else None
    age = None if last is None else now - (last.finished_at or last.started_at)
    if (age if age is not None else now - started_at) > policy.max_age_s:
        reasons.append(NO_RECENT_ROUND)
    idle = _idle_streak(completed)
    if policy.idle_rounds > 0 and idle >= policy.idle_rounds:
        reasons.append(NOTHING_EVALUATED)
    stale = _stale_weights(completed, policy)
    if stale:
        reasons.append(STALE_EMA)
    details = {
        "last_round_id": last.id if last else None,
        "last_round_age_s": None if age is None else round(age, 1),
        "max_age_s": policy.max_age_s,
        "rounds_without_evaluation": idle,
        "last_round_due": last.n_due if last else None,
        "last_round_evaluated": last.n_evaluated if last else None,
    }
    return Health(not reasons, reasons, details)


def _idle(r: RoundRecord) -> bool:
    """Models were due and none got a verdict (unknown counts, before migration 8, are not idle)."""
    return bool(r.n_due) and r.n_evaluated == 0


def _idle_streak(completed: list[RoundRecord]) -> int:
    streak = 0
    for r in completed:
        if not _idle(r):
            break
        streak += 1
    return streak


def _stale_weights(completed: list[RoundRecord], policy: HealthPolicy) -> bool:
    """Was the newest weights-setting round's EMA last refreshed too many idle rounds, or too long, before?"""
    setting = next((i for i, r in enumerate(completed) if r.status == ROUND_WEIGHTS_SET), None)
    if setting is None:
        return False
    since = completed[setting:]
    idle = _idle_streak(since)
    if policy.idle_rounds > 0 and idle >= policy.idle_rounds:
        return True
    refreshed = next((r for r in since if r.n_evaluated), None)
    if refreshed is None:
        return False  # never evaluated (or unknown): `nothing_evaluated` tells the story
    set_at = completed[setting].finished_at or completed[setting].started_at
    return set_at - (refreshed.finished_at or refreshed.started_at) > policy.max_age_s
