"""A schedule of competitions by block: what is in force changes at a block, for every validator at once.

Each entry holds from its `start_block` until the next entry's: the competitions (with their reward
shares and parameters) and an optional owner share. A validator applies the entry in force at each
round's seed block (the window), so every validator switches at the same window without a restart,
and two validators scoring the same window always judge it under the same entry.

A schedule ships with the package (`default_schedule`) and can be loaded from TOML or JSON
(`load_schedule`); every competition is validated as `subnet.competitions` validates them, and an
error names the entry (its index and start block) and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from subnet.competitions import (
    DEFAULT_COMPETITIONS,
    Competition,
    CompetitionError,
    competitions_from_tables,
    read_listed_file,
)

BLOCK_SECONDS = 12.0  # finney's target block time, for "approximate date" only
MAX_OWNER_SHARE = 0.5  # beyond this the subnet pays its owner more than its miners


@dataclass(frozen=True)
class ScheduleEntry:
    """What holds from `start_block`: competitions by id, and the owner's share of the weight.

    `owner` is a hotkey (ss58) or "uid:N"; it receives `owner_share` of every weight vector and the
    competitions split the rest by their reward shares.
    """

    start_block: int
    competitions: Mapping[str, Competition]
    owner: str | None = None
    owner_share: float = 0.0
    note: str = ""

    def owner_uid(self, uid_of) -> int | None:
        """The owner's uid now (`uid_of`: hotkey -> uid or None); None when no owner or not registered."""
        if not self.owner or self.owner_share <= 0:
            return None
        if self.owner.startswith("uid:"):
            return int(self.owner[4:])
        return uid_of(self.owner)


@dataclass(frozen=True)
class CompetitionSchedule:
    entries: tuple[ScheduleEntry, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.entries:
            raise CompetitionError("a schedule needs at least one entry")
        if self.entries[0].start_block != 0:
            raise CompetitionError("schedule entry 0: field 'start_block' must be 0 (something is always in force)")
        for i in range(1, len(self.entries)):
            if self.entries[i].start_block <= self.entries[i - 1].start_block:
                raise CompetitionError(f"schedule entry {i}: field 'start_block' must be after entry {i - 1}'s "
                                       f"({self.entries[i - 1].start_block}), got {self.entries[i].start_block}")

    def in_force(self, block: int) -> ScheduleEntry:
        """The last entry whose start block is at or before `block`."""
        current = self.entries[0]
        for entry in self.entries:
            if entry.start_block <= block:
                current = entry
        return current

    def next_change(self, block: int) -> ScheduleEntry | None:
        """The first entry that starts after `block` (None: no change is scheduled)."""
        return next((e for e in self.entries if e.start_block > block), None)

    def all_competitions(self) -> dict[str, Competition]:
        """Every competition any entry names (the latest definition of each): what a commitment may name."""
        out: dict[str, Competition] = {}
        for entry in self.entries:
            out.update(entry.competitions)
        return out

    def retired_since(self, competition_id: str, block: int) -> int | None:
        """The block since which `competition_id` is out of force, if it was in force before and is not
        now nor in any later entry; None otherwise (in force, or only scheduled to open)."""
        entry = self.in_force(block)
        if competition_id in entry.competitions:
            return None
        later = [e for e in self.entries if e.start_block > block]
        earlier = [e for e in self.entries if e.start_block <= block]
        if any(competition_id in e.competitions for e in later):
            return None
        since = None
        for e in earlier:  # the start of the first entry without it after the last one with it
            if competition_id in e.competitions:
                since = None
            elif since is None:
                since = e.start_block
        was_open = any(competition_id in e.competitions for e in earlier)
        return since if was_open else None


def default_schedule(competitions: Mapping[str, Competition] | None = None) -> CompetitionSchedule:
    """The package's schedule: one entry from block 0 with the default competitions, no owner share."""
    return CompetitionSchedule((ScheduleEntry(0, dict(competitions or DEFAULT_COMPETITIONS)),))


def approximate_seconds(from_block: int, to_block: int) -> float:
    return (to_block - from_block) * BLOCK_SECONDS


def entry_from_dict(index: int, data: Mapping[str, Any]) -> ScheduleEntry:
    """One entry from plain data; every error names the entry and the field."""
    where = f"schedule entry {index}"
    if not isinstance(data, Mapping):
        raise CompetitionError(f"{where}: must be a table, got {data!r}")
    unknown = set(data) - {"start_block", "competition", "competitions", "owner", "owner_share", "note"}
    if unknown:
        raise CompetitionError(f"{where}: unknown field(s) {sorted(unknown)}")
    start = data.get("start_block")
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise CompetitionError(f"{where}: field 'start_block' must be a non-negative integer, got {start!r}")
    where = f"schedule entry {index} (start_block {start})"
    listed = data.get("competition", data.get("competitions"))
    if not isinstance(listed, list) or not listed:
        raise CompetitionError(f"{where}: field 'competition' must list at least one competition")
    comps = competitions_from_tables(listed, where)
    return ScheduleEntry(start, comps, *_owner(where, data), note=str(data.get("note", "")))


def _owner(where: str, data: Mapping[str, Any]) -> tuple[str | None, float]:
    owner, share = data.get("owner"), data.get("owner_share", 0.0)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not math.isfinite(share) \
            or not (0 <= share <= MAX_OWNER_SHARE):
        raise CompetitionError(f"{where}: field 'owner_share' must be a number in [0, {MAX_OWNER_SHARE}], "
                               f"got {share!r}")
    if owner is not None and (not isinstance(owner, str) or not owner
                              or (owner.startswith("uid:") and not owner[4:].isdigit())):
        raise CompetitionError(f"{where}: field 'owner' must be a hotkey or 'uid:N', got {owner!r}")
    if share > 0 and owner is None:
        raise CompetitionError(f"{where}: field 'owner' is required when owner_share > 0")
    return owner, float(share)


def load_schedule(path: str | Path) -> CompetitionSchedule:
    """Read a schedule: TOML `[[entry]]` tables (each with `[[entry.competition]]`) or JSON {"entries": [...]}."""
    p = Path(path)
    entries = read_listed_file(p, "schedule", ("entry", "entries"), "entries")
    try:
        return CompetitionSchedule(tuple(entry_from_dict(i, e) for i, e in enumerate(entries)))
    except CompetitionError as e:
        raise CompetitionError(f"schedule file {p}: {e}") from None


def schedule_to_dict(schedule: CompetitionSchedule) -> dict[str, Any]:
    """Plain data that `load_schedule` reads back (JSON)."""
    return {"entries": [
        {"start_block": e.start_block, "owner": e.owner, "owner_share": e.owner_share, "note": e.note,
         "competitions": [c.to_dict() for c in e.competitions.values()]}
        for e in schedule.entries
    ]}
