"""The competition schedule: the entry in force at a block, the next change, retired competitions, and a
loader whose errors name the entry and the field."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from subnet.competitions import DEFAULT_COMPETITIONS, CompetitionError
from subnet.schedule import (
    CompetitionSchedule,
    ScheduleEntry,
    default_schedule,
    load_schedule,
    schedule_to_dict,
)

TINY = DEFAULT_COMPETITIONS["tiny"]
SMALL = replace(TINY, id="small", reward_share=0.3)


def two_step() -> CompetitionSchedule:
    return CompetitionSchedule((
        ScheduleEntry(0, {"tiny": TINY}),
        ScheduleEntry(1_000, {"small": SMALL, "tiny2": replace(TINY, id="tiny2", reward_share=0.7)},
                      owner="uid:0", owner_share=0.1),
    ))


def test_in_force_and_next_change_switch_exactly_at_the_start_block():
    s = two_step()
    assert set(s.in_force(999).competitions) == {"tiny"}
    assert set(s.in_force(1_000).competitions) == {"small", "tiny2"}
    assert s.next_change(999).start_block == 1_000
    assert s.next_change(1_000) is None


def test_retired_since_tells_a_retired_competition_from_one_not_yet_open():
    s = two_step()
    assert s.retired_since("tiny", 999) is None  # still in force
    assert s.retired_since("tiny", 1_500) == 1_000
    assert s.retired_since("small", 500) is None  # opens later: not retired
    assert s.retired_since("nope", 1_500) is None
    assert set(s.all_competitions()) == {"tiny", "small", "tiny2"}


def test_default_schedule_is_the_default_competitions_from_block_0():
    entry = default_schedule().in_force(10**9)
    assert entry.start_block == 0 and dict(entry.competitions) == DEFAULT_COMPETITIONS and entry.owner_share == 0


def test_a_schedule_round_trips_through_json(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(schedule_to_dict(two_step())))
    loaded = load_schedule(path)
    assert loaded == two_step()


def test_toml_schedule_loads(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("""
[[entry]]
start_block = 0
[[entry.competition]]
id = "tiny"
tokenizer = "builtin:tiny"
max_seq_len = 64
min_params = 1
max_params = 100
max_bytes = 1000
architectures = ["LlamaForCausalLM"]

[[entry]]
start_block = 300
owner = "5Owner"
owner_share = 0.2
[[entry.competition]]
id = "small"
tokenizer = "builtin:tiny"
max_seq_len = 64
min_params = 1
max_params = 100
max_bytes = 1000
architectures = ["LlamaForCausalLM"]
reward_share = 0.5
""")
    s = load_schedule(path)
    assert s.in_force(300).owner == "5Owner" and s.in_force(300).owner_share == 0.2
    assert s.in_force(299).competitions["tiny"].max_seq_len == 64


def _bad(tmp_path, mutate) -> str:
    data = schedule_to_dict(two_step())
    mutate(data["entries"])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CompetitionError) as e:
        load_schedule(path)
    return str(e.value)


def test_malformed_entries_fail_naming_the_entry_and_the_field(tmp_path):
    msg = _bad(tmp_path, lambda es: es[1]["competitions"][0].update(max_seq_len=2))
    assert "entry 1 (start_block 1000)" in msg and "'max_seq_len'" in msg
    msg = _bad(tmp_path, lambda es: es[1].update(owner_share=0.9))
    assert "entry 1" in msg and "'owner_share'" in msg
    msg = _bad(tmp_path, lambda es: es[1].update(owner=None))
    assert "entry 1" in msg and "'owner'" in msg
    msg = _bad(tmp_path, lambda es: es[1].update(start_block="1000"))
    assert "entry 1" in msg and "'start_block'" in msg
    msg = _bad(tmp_path, lambda es: es[1].update(start_block=0))
    assert "entry 1" in msg and "'start_block'" in msg
    msg = _bad(tmp_path, lambda es: es[0].update(start_block=5))
    assert "entry 0" in msg and "'start_block'" in msg
    msg = _bad(tmp_path, lambda es: es[1]["competitions"][1].update(reward_share=0.9))
    assert "entry 1" in msg and "reward_share" in msg
    msg = _bad(tmp_path, lambda es: es[0].update(colour="red"))
    assert "entry 0" in msg and "colour" in msg


def test_validator_start_up_refuses_a_malformed_schedule_naming_entry_and_field(tmp_path):
    from subnet.validator.config import ValidatorConfig
    from subnet.validator.daemon import resolve_competitions

    data = schedule_to_dict(two_step())
    data["entries"][1]["owner_share"] = -1
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CompetitionError, match=r"entry 1 \(start_block 1000\): field 'owner_share'"):
        resolve_competitions(ValidatorConfig(schedule_file=path, network=f"devnet:{tmp_path / 'chain.sqlite'}"))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(schedule_to_dict(two_step())))
    # The competitions here are copies of the toy `tiny`: they exist on a devnet only.
    devnet = f"devnet:{tmp_path / 'chain.sqlite'}"
    evaluated, known = resolve_competitions(ValidatorConfig(schedule_file=good, network=devnet))
    assert set(known) == {"tiny", "small", "tiny2"} and set(evaluated) == set(known)
