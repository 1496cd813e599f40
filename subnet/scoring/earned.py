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
- ties and losses earn nothing; only the win that made a model champion counts;
- the leader is the champion the model dethroned in the champion chain (`decide.py`), replayed from
  the windows every round, so every validator with the same windows holds the same advantages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
