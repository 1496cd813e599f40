"""The engine's CUDA-only branches, run on CPU (tests/cuda_emulation.py): Liger's fused cross-entropy
under the Triton interpreter, the flash-attention switch and its flattened varlen path, the bf16
tolerances, the out-of-memory split and the release of cached memory."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging

import numpy as np
import pytest
import torch
import transformers.masking_utils

import subnet.eval.engine as engine
from subnet.eval.engine import compute_losses
from tests.cuda_emulation import CpuFlashAttention, interpretable_liger
from tests.eval_loaders import random_docs, tiny_model
from tests.test_eval_engine import reference_nll

pytest.importorskip("liger_kernel")
DOCS = [60, 45, 33, 20, 9, 2]


@pytest.fixture
def liger(monkeypatch):
    """Real Liger under the interpreter; counts the batches its fused kernel scored."""
    interpretable_liger(monkeypatch)
    used = []
    real = engine.fused_token_nll_fn

    def spy(head, device):
        fused = real(head, device)
        if fused is None:
            return None

        def counted(states, targets):
            used.append(len(targets))
            return fused(states, targets)

        return counted

    monkeypatch.setattr(engine, "fused_token_nll_fn", spy)
    return used


def _relative(losses, expected):
    return np.abs(losses.nll_sum - expected) / np.maximum(np.abs(expected), 1e-12)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma2"])  # gemma2: softcapped logits
def test_liger_through_compute_losses_matches_float32_batch1_on_cuda(emulated_cuda, liger, arch):
    model = tiny_model(arch)
    docs = random_docs(DOCS, seed=4)
    expected = np.array([reference_nll(model, t) for t in docs.tokens])
    losses = compute_losses(model.to("cuda:0"), docs, device="cuda:0")
    assert sum(liger) >= int(docs.n_predicted.sum())  # every predicted token went through the fused kernel
    assert _relative(losses, expected).max() < 1e-6


def test_liger_in_bf16_agrees_with_the_chunked_path(emulated_cuda, liger, monkeypatch):
    model = tiny_model("llama").to(device="cuda:0", dtype=torch.bfloat16)
    docs = random_docs(DOCS, seed=5)
    fused = compute_losses(model, docs, device="cuda:0")
    assert liger
    monkeypatch.setenv("SUBNET_EVAL_FUSED_CE", "0")
    chunked = compute_losses(model, docs, device="cuda:0")
    # Same bf16 hidden states, float32 reductions in both: only summation order differs.
    np.testing.assert_allclose(fused.nll_sum, chunked.nll_sum, rtol=1e-5)
    expected = np.array([reference_nll(tiny_model("llama"), t) for t in docs.tokens])
    assert _relative(fused, expected).max() < 2e-2  # bf16 weights against the float32 reference


# ----------------------------------------------------------------------------- flash-attention


@pytest.fixture
def flash(monkeypatch):
    cpu_flash = CpuFlashAttention()
    cpu_flash.install(monkeypatch)
    return cpu_flash


@pytest.fixture
def flash_installed(monkeypatch):
    """`find_spec('flash_attn')` finds the package, as on a GPU host with it installed (the engine's check;
    transformers' own checks ran before, on the real environment, and are cached)."""
    import transformers.models.gemma2.modeling_gemma2  # noqa: F401
    import transformers.models.llama.modeling_llama  # noqa: F401
    from transformers.utils.import_utils import is_flash_attn_2_available

    is_flash_attn_2_available()
    real = importlib.util.find_spec
    spec = importlib.machinery.ModuleSpec("flash_attn", None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec if name == "flash_attn" else real(name, *a))


@pytest.mark.parametrize("arch", ["llama", "gemma2"])  # gemma2: attention softcap and a sliding window
def test_flash_flattened_varlen_path_is_exact_and_keeps_documents_apart(flash, arch):
    overrides = {"sliding_window": 16} if arch == "gemma2" else {}
    model = tiny_model(arch, **overrides)
    model.config._attn_implementation = "flash_attention_2"
    docs = random_docs(DOCS, seed=6)
    expected = np.array([reference_nll(tiny_model(arch, **overrides), t) for t in docs.tokens])
    losses = compute_losses(model, docs, layout="packed", block_tokens=64, token_budget=128)
    assert _relative(losses, expected).max() < 1e-5
    lengths = sorted(len(t) for t in docs.tokens if len(t) >= 2)
    segments = sorted(b - a for call in flash.varlen_calls[1:] for a, b in zip(call[:-1], call[1:]))
    # Every scored document was its own varlen segment (plus the pad tail each row ends with).
    assert all(segments.count(n) >= lengths.count(n) for n in set(lengths))


def test_without_flattening_flash_would_mix_documents(flash, monkeypatch):
    """The control for the test above: rows left unflattened reach flash as dense rows, and documents
    that share a row attend to each other."""
    model = tiny_model("llama")
    model.config._attn_implementation = "flash_attention_2"
    monkeypatch.setattr(engine, "flatten_for_varlen", lambda ids, pos: (ids, pos))
    docs = random_docs(DOCS, seed=6)
    expected = np.array([reference_nll(tiny_model("llama"), t) for t in docs.tokens])
    losses = compute_losses(model, docs, layout="packed", block_tokens=64, token_budget=128)
    assert _relative(losses, expected).max() > 1e-3


def test_bf16_model_on_cuda_switches_to_flash_when_installed(emulated_cuda, flash, flash_installed, monkeypatch):
    model = tiny_model("llama").to(device="cuda:0", dtype=torch.bfloat16)
    asked = []

    def switch(impl):  # what transformers does once flash-attn is importable
        asked.append(impl)
        model.config._attn_implementation = impl

    monkeypatch.setattr(model, "set_attn_implementation", switch)
    monkeypatch.setenv("SUBNET_EVAL_FUSED_CE", "0")
    docs = random_docs(DOCS, seed=7)
    losses = compute_losses(model, docs, device="cuda:0")
    assert asked == ["flash_attention_2"] and flash.varlen_calls
    expected = np.array([reference_nll(tiny_model("llama"), t) for t in docs.tokens])
    assert _relative(losses, expected).max() < 2e-2
    compute_losses(model, docs, device="cuda:0")
    assert asked == ["flash_attention_2"]  # a model already on flash-attention is left as it is


def test_flash_switch_is_skipped_or_survives_failure(emulated_cuda, flash_installed, monkeypatch, caplog):
    monkeypatch.setenv("SUBNET_EVAL_FUSED_CE", "0")
    docs = random_docs(DOCS, seed=8)
    float32 = tiny_model("llama")
    compute_losses(float32, docs, device="cuda:0")  # flash takes half precision only: no switch
    assert float32.config._attn_implementation == "sdpa"
    bf16 = tiny_model("llama").to(dtype=torch.bfloat16)

    def refuse(impl):
        raise ImportError("flash_attn is not importable here")

    monkeypatch.setattr(bf16, "set_attn_implementation", refuse)
    with caplog.at_level(logging.INFO, logger="subnet.eval.engine"):
        losses = compute_losses(bf16, docs, device="cuda:0")
    assert "flash_attention_2 unavailable" in caplog.text and bf16.config._attn_implementation == "sdpa"
    assert np.isfinite(losses.nll_sum).all()


# ----------------------------------------------------------------------------- bf16 tolerances


def test_bf16_packing_probe_accepts_exact_packing_and_catches_leaks(emulated_cuda, monkeypatch, caplog):
    monkeypatch.setenv("SUBNET_EVAL_FUSED_CE", "0")
    model = tiny_model("llama").to(device="cuda:0", dtype=torch.bfloat16)
    docs = random_docs([40, 30, 20, 10], seed=8)
    with caplog.at_level(logging.WARNING, logger="subnet.eval.engine"):
        compute_losses(model, docs, device="cuda:0")
    assert "ignores packed position ids" not in caplog.text  # bf16 noise stays inside the tolerance
    monkeypatch.setattr(transformers.masking_utils, "find_packed_sequence_indices", lambda position_ids: None)
    with caplog.at_level(logging.WARNING, logger="subnet.eval.engine"):
        compute_losses(model, docs, device="cuda:0")
    assert "ignores packed position ids" in caplog.text  # a leak is far outside it


# ----------------------------------------------------------------------------- out of memory


@pytest.mark.parametrize("layout", ["packed", "padded"])
def test_cuda_out_of_memory_splits_the_batch_and_releases_cached_memory(emulated_cuda, monkeypatch, layout):
    monkeypatch.setenv("SUBNET_EVAL_FUSED_CE", "0")
    model = tiny_model("llama")
    docs = random_docs([120, 100, 90, 80, 70, 60, 50, 3], seed=6)
    expected = np.array([reference_nll(model, t) for t in docs.tokens])

    def small_gpu(module, args, kwargs):
        if kwargs["input_ids"].numel() > 260:
            raise torch.OutOfMemoryError("CUDA out of memory (emulated)")

    model.model.register_forward_pre_hook(small_gpu, with_kwargs=True)
    losses = compute_losses(model, docs, device="cuda:1", layout=layout, block_tokens=128, token_budget=10_000)
    assert _relative(losses, expected).max() < 1e-5
    assert ("empty_cache", 0) in emulated_cuda.calls  # cached blocks go back before the retry
    assert engine.default_token_budget("cuda:1") == engine.CUDA_TOKEN_BUDGET
    with pytest.raises(torch.OutOfMemoryError):  # one row that does not fit alone costs this model only
        compute_losses(model, random_docs([300, 10]), device="cuda:1", layout=layout, token_budget=10_000)
