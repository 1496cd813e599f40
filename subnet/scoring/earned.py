"""Issue 20: an advantage a model earns by the improvement it demonstrated, not one every model gets.

In mode "age" every earlier model holds eps0 * 0.5 ** (age / half_life). In mode "earned" a model
that dethroned the leader holds what it showed when it first beat the leader: the lower end of
the confidence sequence of its improvement, 1 - L_new / L_leader (`Comparison.acc_high`), clamped
to [min_earned, cap], and decaying with the model's age at the same half-life:

    eps(model, age) = max(floor, clamp(improvement_low, min_earned, cap) * 0.5 ** (age / half_life))

Why this rule: a big leap (say 3%) is protected at the cap (1%) for longer than eps0 would
protect it, so copy-and-nudge cannot take it cheaply; a marginal win, which is what a copier
that fine-tunes the leader produces, earns little more than the advantage it had to overcome,
so the next real improvement gets through quickly. The lower end, not the estimate, because
what a model earns must not depend on luck of the draw. `min_earned` keeps some protection for
any winner (a clean copy-and-nudge still has to beat it), `cap` bounds how long a single leap
can hold the field.

Edge cases, all deliberate:
- a model that never dethroned a leader (the first model, or any model still waiting) holds eps0,
  as in mode "age": it has demonstrated nothing yet, and eps0 is what miners know;
- a win decided by failures (the leader failed more documents) demonstrates no improvement: it
  earns `min_earned`;
- ties and losses earn nothing; only the first win over a leader counts, and what was earned is
  kept with that verdict even if the beaten leader fails later;
- the leader is the valid model with the highest stored weight (EMA) before the round; a round
  with no such model (a fresh competition) has no leader, so nobody earns anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from subnet.competitions import AdvantageSchedule
from subnet.scoring.advantage import advantage


@dataclass(frozen=True)
class EarnedAdvantage:
    """What a model earned, and the verdict that earned it (the leader it beat, the improvement shown)."""

    key: str
    eps: float  # the earned starting advantage, before decay with age
    leader: str
    improvement_low: float  # lower end of 1 - L_model / L_leader over the pair's evidence
    improvement_high: float
    rounds: int
    by_failures: bool = False


def earned_eps(improvement_low: float, schedule: AdvantageSchedule) -> float:
    """The starting advantage for a demonstrated improvement: clamped to [min_earned, cap]."""
    x = float(improvement_low)
    if math.isnan(x):
        return float(schedule.min_earned)
    return float(min(schedule.cap, max(schedule.min_earned, x)))


def model_advantage(age_blocks: float, schedule: AdvantageSchedule, earned: EarnedAdvantage | None = None) -> float:
    """The advantage a model of this age holds as the earlier model of a pair."""
    if schedule.mode != "earned" or earned is None:
        return advantage(age_blocks, schedule)
    scaled = AdvantageSchedule(eps0=earned.eps, half_life_blocks=schedule.half_life_blocks,
                               floor=min(schedule.floor, earned.eps))
    return advantage(age_blocks, scaled)


def advantages_now(
    blocks: Mapping[str, int], earned: Mapping[str, EarnedAdvantage], current_block: int,
    schedule: AdvantageSchedule,
) -> dict[str, float]:
    """Each model's advantage at `current_block` (for `compute_wins(advantages=...)`)."""
    return {k: model_advantage(current_block - b, schedule, earned.get(k)) for k, b in blocks.items()}


def leader_of(weights: Mapping[str, float], valid: set[str]) -> str | None:
    """The valid model with the highest positive stored weight (ties: smallest key), or None."""
    best = [(w, k) for k, w in weights.items() if k in valid and math.isfinite(w) and w > 0]
    return min(best, key=lambda wk: (-wk[0], wk[1]))[1] if best else None


def newly_earned(comparisons: Mapping, leader: str | None, already: set[str],
                 schedule: AdvantageSchedule) -> dict[str, EarnedAdvantage]:
    """Models that beat the leader this round for the first time, with what each earned."""
    if leader is None:
        return {}
    out = {}
    for (earlier, later), c in comparisons.items():
        if earlier != leader or later in already or not c.later_wins:
            continue
        low = 0.0 if c.decided_by_failures else -c.acc_high
        high = 0.0 if c.decided_by_failures else -c.acc_low
        eps = float(schedule.min_earned) if c.decided_by_failures else earned_eps(low, schedule)
        out[later] = EarnedAdvantage(later, eps, leader, low, high, c.rounds, c.decided_by_failures)
    return out
