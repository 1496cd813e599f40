"""From each competition's decision to the chain's uids: registrations and reward shares.

The decisions themselves are `subnet.validator.judging` (over `subnet.scoring.decide`); here the
stored weights of each competition meet the current metagraph. No I/O: plain values in and out.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Mapping

from subnet.chain.base import Metagraph
from subnet.competitions import Competition

if TYPE_CHECKING:
    from subnet.schedule import ScheduleEntry

log = logging.getLogger(__name__)


def new_registrations(previous: Mapping[str, int] | None, current: Mapping[str, int]) -> set[str]:
    """Hotkeys (of `current`, hotkey -> uid) that were not registered at that uid in the previous
    recorded round: newcomers, returning hotkeys and hotkeys moved to another uid.

    Their stored EMA belongs to an earlier registration and must not carry over. `previous` None
    means nothing was recorded yet (a fresh or just-migrated state): nobody is known to be new.
    A hotkey that left and came back at the same uid between two rounds cannot be told apart from
    one that stayed (the metagraph carries no registration block).
    """
    if previous is None:
        return set()
    return {hotkey for hotkey, uid in current.items() if previous.get(hotkey) != uid}


def carried_ema(previous: Mapping[str, float], registered: Mapping[str, int], fresh: set[str]) -> dict[str, float]:
    """The part of a stored EMA that carries into this round: registered hotkeys that did not
    (re-)register since the last round. EMA is keyed by hotkey, so a new hotkey at a reused uid
    never inherits the weight of the hotkey that held the uid before."""
    return {k: float(v) for k, v in previous.items() if k in registered and k not in fresh}


def uid_weights(
    ema: Mapping[str, Mapping[str, float]], metagraph: Metagraph, competitions: Mapping[str, Competition]
) -> tuple[list[int], list[float]]:
    """Each competition's EMA scaled by its reward share, summed per uid of the current metagraph, normalised.

    Only hotkeys of `metagraph` get a uid, so a hotkey that left never receives weight, whatever the
    stored EMA says. Within a competition the registered hotkeys' EMA is renormalised to 1 before
    the share is applied; a competition with nothing to reward (no registered hotkey with positive
    EMA) contributes nothing, and the final normalisation hands its share to the competitions that
    have winners, pro rata to their shares (e.g. shares 0.5/0.3/0.2 with the last empty -> 0.625/0.375).
    A share meant for someone else is the schedule's owner share (`with_owner_share`), not a gap here;
    leaving a share unset would make weights shrink as competitions open. Competitions this validator does not evaluate (absent from
    `competitions`) are skipped the same way, so their share goes to the evaluated ones.
    """
    totals: dict[int, float] = {}
    for cid, weights in ema.items():
        competition = competitions.get(cid)
        if competition is None:
            continue
        valid = {metagraph.uid_of(hk): w for hk, w in weights.items() if math.isfinite(w) and w > 0}
        valid.pop(None, None)  # deregistered hotkeys: their share goes to the registered ones
        norm = sum(valid.values())
        for uid, w in valid.items():
            totals[uid] = totals.get(uid, 0.0) + competition.reward_share * w / norm
    total = sum(totals.values())
    uids = sorted(totals)
    if total <= 0:
        return uids, [0.0 for _ in uids]
    return uids, [totals[u] / total for u in uids]


def with_owner_share(uids: list[int], weights: list[float], metagraph: Metagraph,
                     entry: "ScheduleEntry | None") -> tuple[list[int], list[float]]:
    """The entry's owner (hotkey or "uid:N") takes `owner_share`; the competitions' weights are scaled
    by 1 - owner_share. An owner not registered now hands its share back to the competitions (logged),
    and with no competition weight at all nothing is set for the owner alone."""
    if entry is None or entry.owner_share <= 0 or sum(weights) <= 0:
        return uids, weights
    owner = entry.owner_uid(metagraph.uid_of)
    if owner is None or owner not in {n.uid for n in metagraph.neurons}:
        log.warning("owner %s is not registered: its share %.3f goes back to the competitions",
                    entry.owner, entry.owner_share)
        return uids, weights
    total = sum(weights)
    out = {u: (1 - entry.owner_share) * w / total for u, w in zip(uids, weights)}
    out[owner] = out.get(owner, 0.0) + entry.owner_share
    ordered = sorted(out)
    return ordered, [out[u] for u in ordered]
