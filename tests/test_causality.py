"""A model that sees the token it predicts is refused: by name in its config, and by a probe of its outputs.

The hole (found by scripts/generation_gamed.py): transformers builds a bidirectional mask when a Llama
config says `is_causal: false`, and such a model scores a loss near zero without predicting anything.
"""

from __future__ import annotations

import pytest
import torch

from subnet.eval.causality import verify_causal
from subnet.eval.engine import compute_losses
from subnet.eval.head import OutputHead, UnsupportedModel
from tests.eval_loaders import VOCAB, random_docs, tiny_model
from tests.test_loading import _copy, _edit_config, competition, llama_dir, rejected_cheaply  # noqa: F401


def _non_causal(arch: str = "llama") -> torch.nn.Module:
    model = tiny_model(arch)
    model.config.is_causal = False  # what a config.json with "is_causal": false builds
    return model


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_a_model_that_attends_ahead_is_refused_by_the_engine(arch):
    docs = random_docs([40, 33, 12])
    with pytest.raises(UnsupportedModel, match="not causal"):
        compute_losses(_non_causal(arch), docs, device="cpu")
    honest = compute_losses(tiny_model(arch), docs, device="cpu")  # the same model, causal, is scored
    assert honest.nll_sum.shape == (3,) and torch.isfinite(torch.as_tensor(honest.nll_sum)).all()


def test_the_probe_passes_a_causal_model_and_fails_the_same_weights_attending_ahead():
    model = tiny_model("llama")
    verify_causal(OutputHead.of(model), random_docs([40]), torch.device("cpu"))  # causal: passes
    model.config.is_causal = False
    with pytest.raises(UnsupportedModel, match="changed the hidden states"):
        verify_causal(OutputHead.of(model), random_docs([40]), torch.device("cpu"))


def test_short_documents_cannot_dodge_the_probe():
    docs = random_docs([2, 3, 5], vocab=VOCAB)  # the first document long enough is probed
    with pytest.raises(UnsupportedModel, match="not causal"):
        verify_causal(OutputHead.of(_non_causal()), docs, torch.device("cpu"))


@pytest.mark.parametrize("change", [{"is_causal": False}, {"is_causal": "no"}, {"use_bidirectional_attention": True}])
def test_the_loader_refuses_a_config_that_asks_for_bidirectional_attention(llama_dir, tmp_path, change):  # noqa: F811
    model_dir = _copy(llama_dir, tmp_path / "m")
    _edit_config(model_dir, **change)
    err = rejected_cheaply(model_dir, competition())
    assert err.reason == "bad_config" and next(iter(change)) in str(err)


def test_the_loader_accepts_an_explicitly_causal_config(llama_dir, tmp_path):  # noqa: F811
    from subnet.hub.loading import check_model_dir

    model_dir = _copy(llama_dir, tmp_path / "m")
    _edit_config(model_dir, is_causal=True)
    assert check_model_dir(model_dir, competition(), tokenizer_vocab=300).architecture == "LlamaForCausalLM"
