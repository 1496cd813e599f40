"""Competitions: the shipped defaults, validation that names the bad field, and loading from files."""

import dataclasses
import json

import pytest

from subnet.competitions import (
    DEFAULT_COMPETITIONS,
    AdvantageSchedule,
    Competition,
    CompetitionError,
    SamplingBudget,
    competition_from_dict,
    get_competition,
    load_competitions,
)

TINY = DEFAULT_COMPETITIONS["tiny"]


def entry(**changes) -> dict:
    """A valid competition as plain data, as a TOML or JSON file would give it, with changes."""
    d = dataclasses.replace(TINY, id="mine").to_dict()
    d.update(changes)
    return d


def test_defaults_ship_b3_and_tiny():
    assert set(DEFAULT_COMPETITIONS) >= {"b3", "tiny"}
    assert get_competition("b3").tokenizer == "Xenova/gpt-4"
    assert get_competition("tiny").dataset == "synthetic"
    assert get_competition("b3").advantage == AdvantageSchedule(0.004, 50_400.0, 0.0)


def test_unknown_competition_lists_the_known_ones():
    with pytest.raises(CompetitionError, match=r"unknown competition 'nope'; known: \['b3', 'tiny'\]"):
        get_competition("nope")
    with pytest.raises(CompetitionError, match="known: \\['x'\\]"):
        get_competition("tiny", {"x": TINY})


def test_plain_data_round_trips():
    for c in DEFAULT_COMPETITIONS.values():
        assert competition_from_dict(c.to_dict()) == c
        assert competition_from_dict(json.loads(json.dumps(c.to_dict()))) == c


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tokenizer": ""}, "tokenizer"),
        ({"tokenizer": 5}, "tokenizer"),
        ({"max_seq_len": 4}, "max_seq_len"),
        ({"max_seq_len": "4096"}, "max_seq_len"),
        ({"max_seq_len": True}, "max_seq_len"),
        ({"min_params": 0}, "min_params"),
        ({"min_params": 10, "max_params": 5}, "min_params"),
        ({"max_params": 2.5e7}, "max_params"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"architectures": []}, "architectures"),
        ({"architectures": [""]}, "architectures"),
        ({"architectures": "LlamaForCausalLM"}, "architectures"),  # a bare string is not a list of names
        ({"architectures": 5}, "architectures"),
        ({"advantage": {"eps0": 1.0}}, "advantage.eps0"),
        ({"advantage": {"eps0": float("nan")}}, "advantage.eps0"),
        ({"advantage": {"eps0": "0.004"}}, "advantage.eps0"),
        ({"advantage": {"half_life_blocks": 0}}, "advantage.half_life_blocks"),
        ({"advantage": {"eps0": 0.001, "floor": 0.002}}, "advantage.floor"),
        ({"reward_share": 0.0}, "reward_share"),
        ({"reward_share": 1.5}, "reward_share"),
        ({"reward_share": "1"}, "reward_share"),
        ({"sampling": {"page_size": 101}}, "sampling"),
        ({"sampling": {"pages": 0}}, "sampling"),
        ({"sampling": {"pages": "3"}}, "sampling.pages"),
        ({"dataset": None}, "dataset"),
    ],
)
def test_a_bad_field_is_named_in_the_error(changes, field):
    with pytest.raises(CompetitionError, match=f"competition 'mine': field '{field}'"):
        competition_from_dict(entry(**changes))


@pytest.mark.parametrize("bad_id", ["", "has space", "x" * 33, "semi;colon"])
def test_bad_ids_are_refused(bad_id):
    with pytest.raises(CompetitionError, match="competition id"):
        competition_from_dict(entry(id=bad_id))


def test_direct_construction_is_validated_too():
    with pytest.raises(CompetitionError, match="'max_bytes'"):
        dataclasses.replace(TINY, max_bytes=-1)
    with pytest.raises(CompetitionError, match="'sampling'"):
        dataclasses.replace(TINY, sampling=SamplingBudget(max_documents=0))


def test_unknown_fields_are_named():
    with pytest.raises(CompetitionError, match=r"unknown field\(s\) \['max_seqlen'\]"):
        competition_from_dict(entry(max_seqlen=128))
    with pytest.raises(CompetitionError, match="eps_0"):
        competition_from_dict(entry(advantage={"eps_0": 0.01}))


def test_missing_fields_are_named():
    data = entry()
    del data["tokenizer"], data["max_bytes"]
    with pytest.raises(CompetitionError, match=r"missing field\(s\) \['max_bytes', 'tokenizer'\]"):
        competition_from_dict(data)


# ----------------------------------------------------------------------------- files


TOML = """
[[competition]]
id = "small"
tokenizer = "builtin:tiny"
max_seq_len = 512
min_params = 1_000
max_params = 5_000_000
max_bytes = 100_000_000
architectures = ["LlamaForCausalLM"]
reward_share = 0.25
dataset = "synthetic"

[competition.advantage]
eps0 = 0.01
half_life_blocks = 7200
floor = 0.001

[competition.sampling]
pages = 2
page_size = 50
max_documents = 100

[[competition]]
id = "large"
tokenizer = "Xenova/gpt-4"
max_seq_len = 4096
min_params = 1_000_000_000
max_params = 3_400_000_000
max_bytes = 16_106_127_360
architectures = ["LlamaForCausalLM", "Qwen2ForCausalLM"]
reward_share = 0.75
"""


def test_load_toml(tmp_path):
    path = tmp_path / "competitions.toml"
    path.write_text(TOML)
    loaded = load_competitions(path)
    assert list(loaded) == ["small", "large"]
    small, large = loaded["small"], loaded["large"]
    assert small.advantage == AdvantageSchedule(eps0=0.01, half_life_blocks=7200, floor=0.001)
    assert small.sampling == SamplingBudget(pages=2, page_size=50, max_documents=100)
    assert small.architectures == ("LlamaForCausalLM",) and small.reward_share == 0.25
    assert large.advantage == AdvantageSchedule() and large.dataset == "fineweb"
    assert get_competition("large", loaded) is large


@pytest.mark.parametrize("wrapped", [False, True])
def test_load_json_list_or_object(tmp_path, wrapped):
    entries = [entry(id="a", reward_share=0.5), entry(id="b", reward_share=0.5)]
    path = tmp_path / "competitions.json"
    path.write_text(json.dumps({"competitions": entries} if wrapped else entries))
    loaded = load_competitions(path)
    assert sorted(loaded) == ["a", "b"]
    assert loaded["a"] == dataclasses.replace(TINY, id="a", reward_share=0.5)


def write_json(tmp_path, entries) -> str:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(entries))
    return str(path)


def test_duplicate_ids_are_refused(tmp_path):
    path = write_json(tmp_path, [entry(id="a", reward_share=0.1), entry(id="a", reward_share=0.1)])
    with pytest.raises(CompetitionError, match="duplicate competition id 'a'"):
        load_competitions(path)


def test_reward_shares_may_not_exceed_one(tmp_path):
    path = write_json(tmp_path, [entry(id="a", reward_share=0.6), entry(id="b", reward_share=0.5)])
    with pytest.raises(CompetitionError, match="reward shares sum to 1.1"):
        load_competitions(path)


def test_reward_shares_may_sum_to_less_than_one(tmp_path):
    assert load_competitions(write_json(tmp_path, [entry(id="a", reward_share=0.3)]))["a"].reward_share == 0.3


def test_a_bad_entry_in_a_file_names_its_field(tmp_path):
    path = write_json(tmp_path, [entry(id="a", reward_share=0.5), entry(id="b", max_bytes=-5)])
    with pytest.raises(CompetitionError, match="competition 'b': field 'max_bytes'"):
        load_competitions(path)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("c.toml", "[[competition]\nid = ", "is not valid toml"),
        ("c.json", "{not json", "is not valid json"),
        ("c.json", "[]", "defines no competitions"),
        ("c.toml", "title = 'nothing here'", "defines no competitions"),
        ("c.json", '["just a string"]', "each competition must be a table"),
    ],
)
def test_broken_files_are_refused_naming_the_file(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(CompetitionError, match=message) as info:
        load_competitions(path)
    assert str(path) in str(info.value)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(CompetitionError, match="cannot read competitions file"):
        load_competitions(tmp_path / "absent.toml")


def test_competitions_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TINY.max_seq_len = 1  # type: ignore[misc]
    assert isinstance(TINY, Competition)
