"""Degraded operation: the validator runs, but a fault of ours keeps it from judging everything it should.

Reported by `/healthz` (503, with these reasons next to the failing ones), `/metrics` and the
leaderboard page, for as long as it lasts:
  models_parked     models waiting (retried or parked) after a failure of our own store, disk,
                    cache, workers or checks (`faults.py`): their standing is unknown
  weights_held      the latest round kept a competition's weights as they were, because a leading
                    model could not be judged for our fault (`standing.py`)
  disk_below_floor  the model cache's disk has less free space than its floor: no download fits

The daemon records what only it knows (held weights, free disk) in the state's `meta` table after
each round (`record_standing`); the models table says the rest. Both are read through the status
API's read-only connection.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from subnet.validator.faults import is_own_fault
from subnet.validator.state import MODEL_RETRY, ModelRecord, ValidatorState

log = logging.getLogger(__name__)

MODELS_PARKED = "models_parked"
WEIGHTS_HELD = "weights_held"
DISK_BELOW_FLOOR = "disk_below_floor"
REASONS = (MODELS_PARKED, WEIGHTS_HELD, DISK_BELOW_FLOOR)
STANDING_META = "standing"  # {"round": id, "weights_held": {competition: why}, "disk_free_bytes", "disk_floor_bytes", "at"}


@dataclass
class Degraded:
    reasons: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)


def record_standing(state: ValidatorState, round_id: int | None, held: Mapping[str, str], models_dir,
                    floor: int) -> None:
    """After a round: which competitions' weights were held, and the cache disk's free space (best effort)."""
    from subnet.hub.cache import disk_free

    try:
        free = disk_free(models_dir) if models_dir.exists() else None
    except OSError:
        free = None
    try:
        state.set_meta(STANDING_META, {"round": round_id, "weights_held": dict(held), "disk_free_bytes": free,
                                       "disk_floor_bytes": int(floor), "at": time.time()})
    except Exception as e:  # noqa: BLE001 - health then shows the previous record
        log.warning("could not record the round's standing: %s", e)


def assess_degraded(models: Sequence[ModelRecord], standing: Mapping | None) -> Degraded:
    """`models`: those waiting for a retry (any reason); `standing`: what `record_standing` stored."""
    out = Degraded()
    parked: dict[str, int] = {}
    for m in models:
        if m.status == MODEL_RETRY and is_own_fault(m.reason):
            parked[m.reason or ""] = parked.get(m.reason or "", 0) + 1
    if parked:
        out.reasons.append(MODELS_PARKED)
    out.details["models_parked"] = dict(sorted(parked.items()))
    standing = standing if isinstance(standing, Mapping) else {}
    held = standing.get("weights_held") if isinstance(standing.get("weights_held"), Mapping) else {}
    if held:
        out.reasons.append(WEIGHTS_HELD)
    out.details["weights_held"] = dict(held)
    free, floor = standing.get("disk_free_bytes"), standing.get("disk_floor_bytes")
    if isinstance(free, int) and isinstance(floor, int) and free < floor:
        out.reasons.append(DISK_BELOW_FLOOR)
    out.details["disk_free_bytes"], out.details["disk_floor_bytes"] = free, floor
    return out


def read_degraded(state: ValidatorState) -> Degraded:
    return assess_degraded(state.models(MODEL_RETRY), state.get_meta(STANDING_META))
