"""The generation check: greedy outputs from the round's own documents fail a model that cannot generate.

Real tiny transformers models; the worker tests spawn real scoring processes, as a validator does.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from subnet.competitions import CompetitionError, GenerationCheck, get_competition, load_competitions
from subnet.eval.engine import compute_losses
from subnet.eval.generation import choose_prompts, check_generation, judge_outputs
from subnet.eval.worker import ScoreJob, score_models
from subnet.eval.worker_process import generation_failure
from subnet.validator.faults import is_own_fault
from tests.eval_loaders import random_docs, tiny_model

CHECK = GenerationCheck(enabled=True)
CHECKED_TINY = dataclasses.replace(get_competition("tiny"), generation_check=CHECK)


def one_token_model(seed: int = 0) -> torch.nn.Module:
    """Every token embeds to the same vector: the model never sees its input, so every position gets
    the same logits and greedy decoding emits one token forever (not a tie: one id wins by its weights)."""
    model = tiny_model("llama", seed=seed)
    with torch.no_grad():
        embed = model.get_input_embeddings().weight
        embed.copy_(embed[3].expand_as(embed))
    return model


def round_docs():
    return random_docs([150, 60, 130, 200, 40], seed=3)


def test_a_model_that_emits_one_token_fails_with_a_reason():
    model = one_token_model()
    verdict = check_generation(model, round_docs(), CHECK)
    (token,) = set(verdict.outputs[0])
    assert verdict.outputs == ((token,) * 20, (token,) * 20)
    assert verdict.failure == "repeats" and verdict.error == "generation:repeats"
    assert verdict.detail.startswith("generation: every output repeats one token more than 10 times")
    assert f"token {token} x20" in verdict.detail
    assert "outputs 0 and 1 agree at 20 of 20 positions" in verdict.detail
    assert verdict.prompts == (0, 2)  # the first two documents longer than 100 tokens, in the round's order


def test_a_normal_model_generates_different_text_for_different_prompts_and_passes():
    verdict = check_generation(tiny_model("llama", seed=0), round_docs(), CHECK)
    assert verdict.failure == "" and verdict.error == "" and verdict.detail == ""
    assert len(verdict.outputs) == 2 and all(len(o) == 20 for o in verdict.outputs)
    assert verdict.outputs[0] != verdict.outputs[1]
    assert max(np.bincount(o).max() for o in verdict.outputs) <= CHECK.max_repeats


def test_greedy_decoding_is_the_models_own_argmax_continuation():
    model = tiny_model("llama", seed=1)
    docs = round_docs()
    verdict = check_generation(model, docs, CHECK)
    ids = torch.as_tensor(docs.tokens[0][:100])[None]
    with torch.no_grad():
        for _ in range(20):
            ids = torch.cat([ids, model(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert list(verdict.outputs[0]) == ids[0, 100:].tolist()


def test_prompts_are_the_first_long_documents_then_the_longest_others():
    docs = random_docs([50, 150, 101, 300, 100], seed=1)
    chosen = choose_prompts(docs, CHECK)
    assert [i for i, _ in chosen] == [1, 2]
    assert all(np.array_equal(p, docs.tokens[i][:100]) for i, p in chosen)
    few = random_docs([50, 150, 80, 1, 80], seed=1)
    chosen = choose_prompts(few, dataclasses.replace(CHECK, prompts=3))
    assert [(i, len(p)) for i, p in chosen] == [(1, 100), (2, 79), (4, 79)]  # short ones lose their last token
    assert choose_prompts(random_docs([1, 0], seed=1), CHECK) == []
    assert check_generation(tiny_model("llama"), random_docs([1, 0], seed=1), CHECK).failure == ""


@pytest.mark.parametrize("outputs, failure", [
    ([[7] * 10 + list(range(10)), list(range(20, 30)) + [9] * 10], ""),  # 10 repeats: not more than 10
    ([[7] * 11 + list(range(9)), [8] * 11 + list(range(20, 29))], "repeats"),  # both repeat one token
    ([[7] * 11 + list(range(9)), list(range(40, 60))], ""),  # only one output repeats
    ([list(range(20)), list(range(9)) + list(range(50, 61))], ""),  # 9 shared positions
    ([list(range(20)), list(range(10)) + list(range(50, 60))], "ignores_prompt"),  # 10 shared
    ([list(range(20)), list(range(40, 60)), list(range(10)) + list(range(70, 80))], "ignores_prompt"),
])
def test_thresholds(outputs, failure):
    assert judge_outputs(outputs, CHECK)[0] == failure


def test_the_check_fails_a_model_in_its_worker_the_same_on_two_validators_and_costs_it_only(tmp_path):
    one_token_model().save_pretrained(tmp_path / "stuck")
    good = tiny_model("llama", seed=0)
    good.save_pretrained(tmp_path / "good")
    docs = round_docs()
    jobs = [ScoreJob("stuck", str(tmp_path / "stuck")), ScoreJob("good", str(tmp_path / "good"))]
    first = score_models(jobs, CHECKED_TINY, docs, loader="tests.eval_loaders:load_saved", max_memory_bytes=0)
    stuck = first["stuck"]
    assert stuck.error == "generation:repeats" and stuck.losses is None
    assert stuck.detail.startswith("generation: every output repeats one token")
    assert not is_own_fault(stuck.error)  # the miner's model: evidence against it, not our fault
    assert first["good"].error == "" and first["good"].losses is not None
    np.testing.assert_allclose(first["good"].losses.nll_sum, compute_losses(good, docs).nll_sum, rtol=1e-6)
    # A second validator: its own process and its own copy of the round's documents.
    second = score_models(jobs[:1], CHECKED_TINY, docs, loader="tests.eval_loaders:load_saved", max_memory_bytes=0)
    assert (second["stuck"].error, second["stuck"].detail) == (stuck.error, stuck.detail)


def test_off_unless_the_competition_enables_it():
    assert not get_competition("tiny").generation_check.enabled
    assert generation_failure(one_token_model(), round_docs(), get_competition("tiny"), "cpu") is None
    failed = generation_failure(one_token_model(), round_docs(), CHECKED_TINY, "cpu")
    assert failed["error"] == "generation:repeats" and failed["losses"] is None


def test_competitions_file_enables_and_tunes_the_check(tmp_path):
    base = get_competition("tiny").to_dict()
    path = tmp_path / "c.json"
    path.write_text(json.dumps([{**base, "generation_check": True}]))
    assert load_competitions(path)["tiny"].generation_check == CHECK
    path.write_text(json.dumps([{**base, "generation_check": {"enabled": True, "new_tokens": 30, "max_repeats": 15}}]))
    loaded = load_competitions(path)["tiny"]
    assert loaded.generation_check == GenerationCheck(True, new_tokens=30, max_repeats=15)
    path.write_text(json.dumps([loaded.to_dict()]))  # what to_dict writes reads back the same
    assert load_competitions(path)["tiny"] == loaded
    for bad, field in [({"enabled": "yes"}, "generation_check.enabled"),
                       ({"max_repeats": 20}, "generation_check.max_repeats"),
                       ({"enabled": True, "prompt_tokens": 250}, "generation_check.prompt_tokens"),
                       ({"prompts": 0}, "generation_check.prompts"),
                       ({"new_tokens": 2.5}, "generation_check.new_tokens")]:
        path.write_text(json.dumps([{**base, "generation_check": bad}]))
        with pytest.raises(CompetitionError, match=field.replace(".", r"\.")):
            load_competitions(path)


def test_model_check_runs_the_check_when_the_competition_enables_it(tmp_path):
    from subnet.commands.model_check import check_directory

    model = tiny_model("llama", vocab=1600)  # room for the builtin:tiny tokenizer's ids
    model.save_pretrained(tmp_path / "normal")
    with torch.no_grad():
        embed = model.get_input_embeddings().weight
        embed.copy_(embed[3].expand_as(embed))
    model.save_pretrained(tmp_path / "stuck")
    stuck = check_directory(tmp_path / "stuck", CHECKED_TINY, 16, "cpu")
    assert stuck["accepted"] is False and stuck["reason"] == "generation:repeats"
    assert stuck["detail"].startswith("generation: every output repeats one token")
    assert check_directory(tmp_path / "stuck", get_competition("tiny"), 16, "cpu")["accepted"] is True  # off
    normal = check_directory(tmp_path / "normal", CHECKED_TINY, 16, "cpu")
    assert normal["accepted"] is True and normal["documents"] == 16


def test_a_competition_cannot_ask_for_generation_and_sliced_evaluation_together():
    """A sliced model never exists whole on the device, so it could not be checked: refused at load."""
    tiny = get_competition("tiny")
    dataclasses.replace(tiny, sliced_eval=True)  # each alone is fine
    dataclasses.replace(tiny, generation_check=GenerationCheck(enabled=True))
    with pytest.raises(CompetitionError, match="generation_check.*sliced_eval"):
        dataclasses.replace(tiny, sliced_eval=True, generation_check=GenerationCheck(enabled=True))


def test_a_short_competition_with_the_check_off_is_valid():
    """The prompt length only has to fit the sequence when the check runs (tests and toys use short ones)."""
    short = dataclasses.replace(get_competition("tiny"), max_seq_len=96)  # 100 + 20 would not fit
    assert not short.generation_check.enabled
    with pytest.raises(CompetitionError, match="prompt_tokens"):
        dataclasses.replace(short, generation_check=GenerationCheck(enabled=True))


def test_free_tokenizers_exclude_the_generation_check_and_slicing():
    """Both read the round's competition tokens; a free round gives each model texts instead."""
    tiny = dataclasses.replace(get_competition("tiny"), free_tokenizer=True)
    with pytest.raises(CompetitionError, match="generation_check.*free_tokenizer"):
        dataclasses.replace(tiny, generation_check=GenerationCheck(enabled=True))
    with pytest.raises(CompetitionError, match="free_tokenizer.*sliced_eval"):
        dataclasses.replace(tiny, sliced_eval=True)
