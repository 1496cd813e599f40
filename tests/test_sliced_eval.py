"""Sliced evaluation: a model scored a slice of layers at a time gives the unsliced engine's sums."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import transformers

from subnet.competitions import CompetitionError, get_competition
from subnet.eval.engine import compute_losses
from subnet.eval.head import UnsupportedModel
from subnet.eval.sliced import compute_losses_sliced, device_memory_bytes, open_sliced, should_slice
from subnet.hub.loading import check_model_dir
from tests.eval_loaders import random_docs
from tests.test_eval_cuda_branches import flash, flash_installed  # noqa: F401 - fixtures (flash-attn on CPU)

VOCAB = 2048  # the 'tiny' competition's tokenizer
SLICED = dataclasses.replace(get_competition("tiny"), id="tiny-sliced", sliced_eval=True)
LENGTHS = [30, 7, 64, 1, 12, 40, 50, 3, 90, 2, 25]


ARCHS = {
    "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
}


def saved(tmp_path, arch: str, layers: int = 4, tie: bool = False, shard: str = "50GB"):
    """A tiny random float32 model (weights scaled up so documents differ) saved as safetensors."""
    config_cls, cls = ARCHS[arch]
    config = config_cls(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                        tie_word_embeddings=tie)
    config._attn_implementation = "sdpa"
    torch.manual_seed(layers)
    model = cls(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.mul_(8.0)
    directory = tmp_path / f"{arch}-{layers}"
    model.save_pretrained(directory, safe_serialization=True, max_shard_size=shard)
    return directory, model


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def sliced_model(directory, memory_bytes: int):
    model = open_sliced(directory, SLICED, "cpu", torch.float32, memory_override=memory_bytes)
    assert model is not None, "the budget is below the model's size: it must be sliced"
    return model


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_sliced_sums_equal_the_unsliced_engine(tmp_path, arch, layout):
    directory, model = saved(tmp_path, arch, layers=5)
    docs = random_docs(LENGTHS, vocab=VOCAB, seed=1)
    expected = compute_losses(model, docs, layout=layout, token_budget=128)
    layer_bytes = sum(p.numel() * 4 for p in model.model.layers[0].parameters())
    # A device whose slice share holds two layers: slices of 2, 2 and 1 of the 5 layers.
    sliced = sliced_model(directory, int(2.5 * layer_bytes / SLICED.slice_above_share))
    got = compute_losses_sliced(sliced, docs, layout=layout, token_budget=128)
    assert sliced.stats.slices == 3 and sliced.stats.passes == 1
    assert sliced.stats.largest_slice_bytes < sum(p.numel() * 4 for p in model.parameters()) / 2
    assert np.isfinite(expected.nll_sum).all() and expected.nll_sum.max() > 0
    assert relative(got.nll_sum, expected.nll_sum) <= 1e-6
    np.testing.assert_array_equal(got.status, expected.status)
    np.testing.assert_array_equal(got.n_tokens, expected.n_tokens)


def test_tied_and_sharded_weights_load_slice_by_slice(tmp_path):
    directory, model = saved(tmp_path, "llama", layers=3, tie=True, shard="40KB")
    assert (directory / "model.safetensors.index.json").is_file()
    docs = random_docs(LENGTHS, vocab=VOCAB, seed=2)
    expected = compute_losses(model, docs, layout="packed", token_budget=256)
    got = compute_losses_sliced(sliced_model(directory, 1), docs, layout="packed", token_budget=256)
    assert relative(got.nll_sum, expected.nll_sum) <= 1e-6


def test_a_document_with_nan_fails_alone_when_sliced(tmp_path):
    directory, model = saved(tmp_path, "llama", layers=2)
    docs = random_docs([20, 20, 20], vocab=VOCAB, seed=3)
    poison = int(docs.tokens[1][5])
    clean = [i for i in (0, 2) if poison not in docs.tokens[i]]
    with torch.no_grad():
        model.model.embed_tokens.weight[poison] = float("nan")
    model.save_pretrained(directory, safe_serialization=True)
    got = compute_losses_sliced(sliced_model(directory, 1), docs, layout="packed", token_budget=256)
    expected = compute_losses(model, docs, layout="packed", token_budget=256)
    assert got.status[1] == 2 and all(got.status[i] == 0 for i in clean)
    assert relative(got.nll_sum[clean], expected.nll_sum[clean]) <= 1e-6


def test_the_switch_happens_above_the_share_and_not_below(tmp_path):
    directory, _ = saved(tmp_path, "llama", layers=2)
    n_params = check_model_dir(directory, SLICED).n_params
    at_cap = int(2 * n_params / SLICED.slice_above_share)  # bf16 size exactly the share: not above
    assert should_slice(SLICED, n_params, at_cap - 10)
    assert not should_slice(SLICED, n_params, at_cap + 10)
    assert not should_slice(get_competition("tiny"), n_params, 1)  # the competition did not opt in
    assert open_sliced(directory, SLICED, "cpu", torch.float32, memory_override=at_cap + 10) is None
    assert open_sliced(directory, SLICED, "cpu", torch.float32, memory_override=at_cap - 10) is not None
    assert device_memory_bytes("cpu") is None  # no automatic slicing on CPU without a budget


def test_an_architecture_that_cannot_be_sliced_is_unsupported(tmp_path):
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=512,
                                                                vocab_size=VOCAB))
    gpt2.save_pretrained(tmp_path / "gpt2", safe_serialization=True)
    with pytest.raises(UnsupportedModel, match="cannot be scored sliced"):
        open_sliced(tmp_path / "gpt2", SLICED, "cpu", torch.float32, memory_override=1)


@pytest.mark.parametrize("share", [0, -0.1, 1.5, "0.3", True])
def test_a_bad_slice_share_is_refused_by_name(share):
    with pytest.raises(CompetitionError, match="slice_above_share"):
        dataclasses.replace(SLICED, slice_above_share=share)
    with pytest.raises(CompetitionError, match="sliced_eval"):
        dataclasses.replace(SLICED, sliced_eval="yes")


def test_on_an_emulated_gpu_its_memory_decides_and_bf16_sums_match(emulated_cuda, tmp_path, monkeypatch):
    from subnet.hub.loading import load_model

    monkeypatch.setenv("SUBNET_EVAL_FUSED_CE", "0")  # the chunked head on both sides (no Triton here)
    directory, _ = saved(tmp_path, "qwen2", layers=3)
    docs = random_docs(LENGTHS, vocab=VOCAB, seed=5)
    assert device_memory_bytes("cuda:0") == 80 * 1024**3  # the emulated device's total memory
    assert open_sliced(directory, SLICED, "cuda:0", torch.bfloat16) is None  # far below 35% of 80 GiB
    tiny_share = dataclasses.replace(SLICED, slice_above_share=1e-9)  # above it: one layer per slice
    sliced = open_sliced(directory, tiny_share, "cuda:0", torch.bfloat16)
    assert sliced is not None and sliced.layers_per_slice == 1
    got = compute_losses_sliced(sliced, docs)  # the CUDA defaults: packed rows, bf16
    model = load_model(directory, SLICED, device="cuda:0", dtype=torch.bfloat16)
    expected = compute_losses(model, docs, device="cuda:0")
    assert sliced.stats.slices == 3 and emulated_cuda.named("empty_cache")
    assert np.isfinite(expected.nll_sum).all()
    assert relative(got.nll_sum, expected.nll_sum) <= 1e-6


def test_flash_varlen_on_a_gpu_gets_flattened_rows_when_sliced(emulated_cuda, flash, flash_installed, tmp_path,
                                                              monkeypatch):
    monkeypatch.setenv("SUBNET_EVAL_FUSED_CE", "0")

    def switch(self, impl):  # what transformers does once flash-attn is importable
        self.config._attn_implementation = impl

    monkeypatch.setattr(transformers.LlamaForCausalLM, "set_attn_implementation", switch)
    directory, _ = saved(tmp_path, "llama", layers=2)
    docs = random_docs(LENGTHS, vocab=VOCAB, seed=6)
    sliced = open_sliced(directory, dataclasses.replace(SLICED, slice_above_share=1e-9), "cuda:0", torch.bfloat16)
    got = compute_losses_sliced(sliced, docs, block_tokens=128)
    assert sliced.model.config._attn_implementation == "flash_attention_2" and flash.varlen_calls
    model = transformers.LlamaForCausalLM.from_pretrained(directory, dtype=torch.bfloat16).to("cuda:0")
    expected = compute_losses(model, docs, device="cuda:0", block_tokens=128)
    assert model.config._attn_implementation == "flash_attention_2"
    assert relative(got.nll_sum, expected.nll_sum) <= 1e-6
