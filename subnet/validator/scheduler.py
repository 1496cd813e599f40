"""Which models a round evaluates: a pure function of plain data, so it can be tested exhaustively.

Every round cannot score every model on a large subnet, and it need not: the models that hold
weight must be re-checked every round (they are the ones a newcomer must beat), new commitments
must be seen soon, and the rest are revisited oldest-first, because an old model's rivals lose
their advantage over time and the old model can win again.

A commitment is only eligible once it is older than the data-seed window plus a margin, so that
no model can have been tuned on the documents chosen by a block hash it already knew; a past
window (a backfill round) only takes models committed at least `margin` blocks before its seed block.

Holders are the models this validator's decision weights *and* those the chain's consensus pays
(`chain_weight`, the incentive other validators give): a fresh or reset validator scores the
consensus leader in its very first round instead of finding it an hour later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence


@dataclass(frozen=True)
class SchedulingCandidate:
    """What the scheduler needs to know about one verified-or-fetchable commitment."""

    key: str  # the hotkey
    competition: str
    commit_block: int
    weight: float = 0.0  # this validator's current weight
    last_evaluated_round: int | None = None  # None: never evaluated under this commitment
    chain_weight: float = 0.0  # the incentive the chain's consensus gives this hotkey

    @property
    def held(self) -> float:
        return max(self.weight, self.chain_weight)


@dataclass(frozen=True)
class Schedule:
    """Per competition, the keys to evaluate this round (in priority order) and those deferred."""

    selected: dict[str, tuple[str, ...]]
    deferred: dict[str, tuple[str, ...]]
    ineligible: tuple[str, ...]  # keys too young to be evaluated yet


def is_eligible(commit_block: int, current_block: int, window: int = 150, margin: int = 10) -> bool:
    """A commitment may be evaluated once `commit_block + window + margin <= current_block`."""
    return commit_block + window + margin <= current_block


def eligible_for_window(commit_block: int, window_block: int, margin: int = 10) -> bool:
    """A commitment may be scored on a window's documents only if it predates the seed block by `margin`."""
    return commit_block + margin < window_block


def schedule_round(
    candidates: Iterable[SchedulingCandidate],
    current_block: int,
    budget: int | Mapping[str, int],
    *,
    window: int = 150,
    margin: int = 10,
    min_revisits: int = 1,
) -> Schedule:
    """Choose each competition's models for this round within `budget` (per competition).

    Order of priority: models holding weight (heaviest first), then slots reserved for
    `min_revisits` of the least recently evaluated older models, then new or changed commitments
    (earliest commitment first: first come, first served), then further revisits. Ties break on
    the key, so the same inputs always give the same schedule.
    """
    by_competition: dict[str, list[SchedulingCandidate]] = {}
    ineligible: list[str] = []
    for c in candidates:
        if is_eligible(c.commit_block, current_block, window, margin):
            by_competition.setdefault(c.competition, []).append(c)
        else:
            ineligible.append(c.key)
    selected: dict[str, tuple[str, ...]] = {}
    deferred: dict[str, tuple[str, ...]] = {}
    for competition in sorted(by_competition):
        limit = budget if isinstance(budget, int) else budget.get(competition, 0)
        chosen = _choose(by_competition[competition], max(0, limit), max(0, min_revisits))
        selected[competition] = tuple(chosen)
        chosen_set = set(chosen)
        deferred[competition] = tuple(sorted(c.key for c in by_competition[competition] if c.key not in chosen_set))
    return Schedule(selected=selected, deferred=deferred, ineligible=tuple(sorted(ineligible)))


def _choose(pool: Sequence[SchedulingCandidate], limit: int, min_revisits: int) -> list[str]:
    holders = sorted((c for c in pool if c.held > 0), key=lambda c: (-c.held, c.key))
    rest = [c for c in pool if c.held <= 0]
    new = sorted((c for c in rest if c.last_evaluated_round is None), key=lambda c: (c.commit_block, c.key))
    old = sorted(
        (c for c in rest if c.last_evaluated_round is not None),
        key=lambda c: (c.last_evaluated_round, c.commit_block, c.key),
    )
    chosen = [c.key for c in holders[:limit]]
    room = limit - len(chosen)
    reserved = min(min_revisits, len(old), room)
    revisits_first, revisits_later = old[:reserved], old[reserved:]
    chosen += [c.key for c in revisits_first]
    room = limit - len(chosen)
    chosen += [c.key for c in new[:room]]
    room = limit - len(chosen)
    chosen += [c.key for c in revisits_later[:room]]
    return chosen
