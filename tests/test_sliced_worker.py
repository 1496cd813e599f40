"""The scoring worker picks sliced evaluation per model, by size, and contains its failures."""

from __future__ import annotations

import numpy as np
import transformers

from subnet.eval.engine import compute_losses
from subnet.eval.worker import ScoreJob, score_models
from subnet.hub.loading import check_model_dir
from tests.eval_loaders import random_docs
from tests.test_sliced_eval import SLICED, VOCAB, relative, saved


def test_models_above_the_share_are_scored_sliced_and_failures_stay_with_their_model(tmp_path):
    small_dir, small = saved(tmp_path, "llama", layers=1, tie=True)
    big_dir, big = saved(tmp_path, "qwen2", layers=6)
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=32, n_layer=8, n_head=4, n_positions=512,
                                                                vocab_size=VOCAB))
    gpt2.save_pretrained(tmp_path / "gpt2", safe_serialization=True)
    sizes = {name: check_model_dir(d, SLICED).n_params for name, d in
             [("small", small_dir), ("big", big_dir), ("gpt2", tmp_path / "gpt2")]}
    assert sizes["small"] < min(sizes["big"], sizes["gpt2"])
    threshold = (sizes["small"] + min(sizes["big"], sizes["gpt2"])) // 2  # parameters at the cap
    memory = int(2 * threshold / SLICED.slice_above_share)
    docs = random_docs([40, 9, 70, 1, 33, 18], vocab=VOCAB, seed=4)

    outcomes = score_models(
        [ScoreJob("gpt2", str(tmp_path / "gpt2")), ScoreJob("big", str(big_dir)), ScoreJob("small", str(small_dir))],
        SLICED, docs, device="cpu", timeout_s=300, device_memory_bytes=memory,
    )

    assert outcomes["gpt2"].error == "unsupported" and "cannot be scored sliced" in outcomes["gpt2"].detail
    assert outcomes["big"].error == "" and outcomes["big"].sliced
    assert outcomes["small"].error == "" and not outcomes["small"].sliced
    for name, model in (("big", big), ("small", small)):
        expected = compute_losses(model, docs).nll_sum
        assert relative(outcomes[name].losses.nll_sum, expected) <= 1e-6
        assert np.isfinite(outcomes[name].losses.nll_sum).all()
