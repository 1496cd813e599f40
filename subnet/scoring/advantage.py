"""The earlier model's advantage, and when it will have decayed to a given size.

A later model must beat an earlier one by a margin `eps(age of the earlier)`, so that copying
and nudging a published model does not pay, while the margin decays fast enough that real
progress takes over within days: `eps(age) = eps0 * 0.5 ** (age / half_life)`, never below
`floor`. Ages are in blocks (12 s each on finney).

Odd ages are defined rather than raised, because ages come from chain arithmetic and a bad
one must never take a validator round down:
- a negative age (a commitment "from the future", e.g. a lagging node) counts as 0, which gives
  the full eps0: the model cannot be younger than new;
- `math.inf` gives the floor;
- NaN counts as 0 as well (full eps0): when we do not know how old the earlier model is, we
  give it the largest advantage it could have, never less than it deserves.
"""

from __future__ import annotations

import math

from subnet.competitions import AdvantageSchedule


def _clean_age(age_blocks: float) -> float:
    age = float(age_blocks)
    if math.isnan(age) or age < 0:
        return 0.0
    return age


def advantage(age_blocks: float, schedule: AdvantageSchedule) -> float:
    """The relative loss margin an earlier model of this age holds over any later model."""
    age = _clean_age(age_blocks)
    if math.isinf(age):
        return float(schedule.floor)
    decayed = schedule.eps0 * 0.5 ** (age / schedule.half_life_blocks)
    return float(max(schedule.floor, decayed))


def blocks_until_advantage_below(target_eps: float, current_age: float, schedule: AdvantageSchedule) -> float:
    """Blocks from now until the advantage of a model now `current_age` blocks old is at most `target_eps`.

    The miner uses it to say "would win once the advantage decays to X, around block N".
    Returns 0.0 if the advantage is already at or below the target, and `math.inf` if it never
    gets there: the floor is above the target, or the target is 0 with no floor (exponential
    decay never reaches 0). The answer is a float; round it up for a block number.
    """
    target = float(target_eps)
    if math.isnan(target):
        raise ValueError("target_eps must be a number, got NaN")
    age = _clean_age(current_age)
    if advantage(age, schedule) <= target:
        return 0.0
    if schedule.floor > target or target <= 0:
        return math.inf
    # eps0 * 0.5 ** (a / h) = target  <=>  a = h * log2(eps0 / target); eps0 > target here.
    # Subtracting logs, not dividing first: eps0 / target overflows for a subnormal target.
    reach_age = schedule.half_life_blocks * (math.log2(schedule.eps0) - math.log2(target))
    return max(0.0, reach_age - age)
