"""`subnet competitions`: the schedule, the entry in force and the next change; a malformed file names
the entry and the field; an unreachable chain still prints the schedule."""

from __future__ import annotations

import json
from dataclasses import replace

from subnet.commands.main import app
from subnet.commands.boundary import run_command
from subnet.competitions import DEFAULT_COMPETITIONS
from subnet.schedule import CompetitionSchedule, ScheduleEntry, schedule_to_dict
from subnet.commands.competitions_list import describe, render

TINY = DEFAULT_COMPETITIONS["tiny"]
SCHEDULE = CompetitionSchedule((
    ScheduleEntry(0, {"tiny": TINY}),
    ScheduleEntry(7_200, {"small": replace(TINY, id="small", reward_share=0.8)}, owner="uid:0", owner_share=0.2),
))


def test_describe_marks_the_entry_in_force_and_dates_the_next_change():
    info = describe(SCHEDULE, 200, now=0.0)
    assert info["in_force"] == 0
    assert info["next_change"] == {"entry": 1, "start_block": 7_200, "blocks_left": 7_000,
                                   "approx_utc": "1970-01-01 23:20 UTC"}  # 7000 blocks x 12 s
    text = render(info)
    assert "* entry 0 from block 0: tiny 1.00" in text and "owner uid:0 0.20" in text
    assert describe(SCHEDULE, 7_200)["in_force"] == 1 and describe(SCHEDULE, 7_200)["next_change"] is None


def test_unknown_block_still_prints_the_schedule(tmp_path, capsys):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(schedule_to_dict(SCHEDULE)))
    rc = run_command(app, ["competitions", "--network", f"devnet:{tmp_path / 'none.sqlite'}", "--schedule",
                           str(path)])
    out = capsys.readouterr().out
    assert rc == 0 and "current block: unknown" in out and "entry 1 from block 7200: small 0.80" in out
    assert not (tmp_path / "none.sqlite").exists()


def test_malformed_schedule_fails_naming_entry_and_field(tmp_path, capsys):
    data = schedule_to_dict(SCHEDULE)
    data["entries"][1]["competitions"][0]["max_params"] = "big"
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    rc = run_command(app, ["competitions", "--schedule", str(path), "--network", "devnet:/nonexistent"])
    err = capsys.readouterr().err
    assert rc == 2 and "entry 1" in err and "max_params" in err  # a bad file given on the command line: usage (2)
