"""A model that failed for our fault keeps its standing: the round holds no evidence on it either way.

Two hooks in a round. `set_aside` takes such models out before the judge, so they are neither
losers of the round's comparisons nor zeroed in the EMA. `keep_standing` then keeps their EMA as
it was, and when a model that holds a real share of the competition's weight could not be judged
for our fault, keeps the whole competition's weights as they were: whoever happened to be
scorable while our disk was full must not inherit the leader's weight.
"""

from __future__ import annotations

import logging
import math
from typing import Mapping, TypeVar

from subnet.validator.context import CompetitionOutcome
from subnet.validator.faults import is_own_fault
from subnet.validator.state import MODEL_RETRY, ModelRecord

log = logging.getLogger(__name__)

# A model "leads" when it holds at least this share of its competition's previous weights.
# Below it (the fading tail of an old leader) its own weight is kept, but the others still move.
LEAD_SHARE = 0.01
V = TypeVar("V")


def set_aside(outcome: CompetitionOutcome, ready: Mapping[str, V], failed: Mapping[str, str],
              scores: Mapping[str, object], models: Mapping[str, ModelRecord] | None = None,
              ) -> tuple[dict[str, V], dict[str, str], dict[str, object]]:
    """`ready`, `failed` and `scores` without the models that failed for our fault this round.

    They move from `outcome.failed` to `outcome.own_faults` (key -> reason): reported, never judged.
    So do the competition's models of `models` still waiting (parked) after an earlier fault of ours
    and not tried this round: their standing is as unknown as if they had failed again.
    """
    ours = {k: r for k, r in failed.items() if is_own_fault(r)}
    ours.update({k: s.error for k, s in scores.items() if is_own_fault(getattr(s, "error", ""))})
    for key, reason in ours.items():
        outcome.failed.pop(key, None)
        outcome.own_faults[key] = reason
    tried = set(ready) | set(failed) | set(scores)
    for key, m in (models or {}).items():
        if m.competition == outcome.competition and m.status == MODEL_RETRY and is_own_fault(m.reason) \
                and key not in tried:
            outcome.own_faults.setdefault(key, m.reason or "")
    return ({k: v for k, v in ready.items() if k not in ours}, {k: v for k, v in failed.items() if k not in ours},
            {k: v for k, v in scores.items() if k not in ours})


def leading(own: Mapping[str, str], previous: Mapping[str, float]) -> list[str]:
    """The models set aside for our fault that hold at least LEAD_SHARE of the previous weights."""
    total = math.fsum(v for v in previous.values() if math.isfinite(v) and v > 0)
    return sorted(k for k in own if total > 0 and previous.get(k, 0.0) >= LEAD_SHARE * total)


def keep_standing(weights: Mapping[str, float], previous: Mapping[str, float],
                  outcome: CompetitionOutcome) -> dict[str, float]:
    """This round's weights with our faults undone; sets `outcome.weights_held` when they are held.

    Held: a leading model could not be judged, so the previous weights stand unchanged. Otherwise
    each set-aside model keeps its previous weight and the rest share what is left, pro rata.
    """
    own = outcome.own_faults
    lead = leading(own, previous)
    if lead:
        outcome.weights_held = "not judged for our fault: " + ", ".join(f"{k} ({own[k]})" for k in lead)
        log.warning("%s: weights held at their last values; %s", outcome.competition, outcome.weights_held)
        return dict(previous)
    kept = {k: float(previous[k]) for k in own if previous.get(k, 0.0) > 0}
    rest = {k: float(v) for k, v in weights.items() if k not in kept}
    total = math.fsum(rest.values())
    if not kept or total <= 0:
        return {**rest, **kept}
    share = max(0.0, 1.0 - math.fsum(kept.values()))
    return {**{k: v * share / total for k, v in rest.items()}, **kept}
