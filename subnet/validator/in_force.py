"""The competitions in force for a round: the schedule's entry at the round's window, seen through the
operator's filter (`deps.competitions`), and the verdict on models committed to a retired competition.

The window (seed block) decides, never the wall clock or a restart, so every validator scoring a
window judges it under the same entry and switches at the same round.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Mapping

from subnet.competitions import AdvantageSchedule, Competition
from subnet.schedule import ScheduleEntry
from subnet.validator import state as st
from subnet.validator.context import RoundDeps
from subnet.validator.state import ModelRecord

log = logging.getLogger(__name__)


def entry_at(deps: RoundDeps, window: int) -> ScheduleEntry | None:
    return deps.schedule.in_force(window) if deps.schedule is not None else None


def competitions_at(deps: RoundDeps, window: int) -> dict[str, Competition]:
    """The competitions this validator evaluates at `window`, with the parameters of the entry in force."""
    entry = entry_at(deps, window)
    if entry is None:
        return dict(deps.competitions)
    return {cid: c for cid, c in entry.competitions.items() if cid in deps.competitions}


def for_window(deps: RoundDeps, window: int) -> RoundDeps:
    """`deps` whose competitions are those in force at `window` (what a round plans, judges and weights)."""
    if deps.schedule is None:
        return deps
    return dataclasses.replace(deps, competitions=competitions_at(deps, window))


def advantage_at(deps: RoundDeps, competition: Competition) -> Callable[[int], AdvantageSchedule] | None:
    """Each window's advantage for `competition` under the entry in force there (its own if absent)."""
    if deps.schedule is None:
        return None
    schedule = deps.schedule

    def at(window: int) -> AdvantageSchedule:
        c = schedule.in_force(window).competitions.get(competition.id)
        return c.advantage if c is not None else competition.advantage
    return at


def retired_competitions(deps: RoundDeps, window: int) -> set[str]:
    """Competitions out of force for good at `window`: their standing is cleared (no weight, none shown)."""
    if deps.schedule is None:
        return set()
    return {cid for cid in deps.known_competitions if deps.schedule.retired_since(cid, window) is not None}


def retire_models(deps: RoundDeps, models: Mapping[str, ModelRecord], window: int) -> dict[str, ModelRecord]:
    """Models committed to a competition retired at `window` fail with a reason naming the block; they
    are never planned and get no weight. A competition only scheduled to open later is left pending."""
    if deps.schedule is None:
        return dict(models)
    out = dict(models)
    for key, m in models.items():
        if m.competition is None or m.status == st.MODEL_FAILED:
            continue
        since = deps.schedule.retired_since(m.competition, window)
        if since is None:
            continue
        detail = f"competition {m.competition!r} is retired since block {since}; commit to one in force"
        deps.state.mark_failed(m.id, detail, detail)  # the reason is what `subnet scores` and the page show
        out[key] = dataclasses.replace(m, status=st.MODEL_FAILED, reason=detail, detail=detail)
        log.info("%s: %s", key, detail)
    return out
