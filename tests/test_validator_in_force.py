"""What a round evaluates under a schedule: the entry at its window, narrowed by the operator's choice."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from subnet.competitions import DEFAULT_COMPETITIONS, AdvantageSchedule
from subnet.schedule import CompetitionSchedule, ScheduleEntry
from subnet.validator.in_force import advantage_at, competitions_at, retired_competitions

TINY = DEFAULT_COMPETITIONS["tiny"]
RETUNED = replace(TINY, advantage=AdvantageSchedule(eps0=0.001))
SMALL = replace(TINY, id="small", reward_share=0.5)
SCHEDULE = CompetitionSchedule((
    ScheduleEntry(0, {"tiny": TINY}),
    ScheduleEntry(300, {"tiny": RETUNED, "small": SMALL}),
    ScheduleEntry(600, {"small": SMALL}),
))


def _deps(evaluated):
    known = SCHEDULE.all_competitions()
    return SimpleNamespace(schedule=SCHEDULE, known_competitions=known, competitions={c: known[c] for c in evaluated})


def test_the_window_picks_the_entry_and_its_parameters():
    deps = _deps(["tiny", "small"])
    assert set(competitions_at(deps, 150)) == {"tiny"}
    assert competitions_at(deps, 300)["tiny"].advantage.eps0 == 0.001  # the entry's, not the latest definition
    assert set(competitions_at(_deps(["tiny"]), 300)) == {"tiny"}  # the operator's --competition still filters
    assert set(competitions_at(deps, 600)) == {"small"}


def test_each_window_uses_its_entrys_advantage_and_retired_competitions_are_named():
    at = advantage_at(_deps(["tiny"]), RETUNED)
    assert at(150).eps0 == TINY.advantage.eps0 and at(450).eps0 == 0.001
    assert retired_competitions(_deps(["tiny"]), 450) == set()
    assert retired_competitions(_deps(["tiny"]), 600) == {"tiny"}
    assert advantage_at(SimpleNamespace(schedule=None), TINY) is None
