"""Token losses: chunk sizing, and the fused (Liger) path's use only where it can serve."""

from __future__ import annotations

import sys
import types

import pytest
import torch
import torch.nn.functional as F

from subnet.eval.head import OutputHead
from subnet.eval.token_loss import CPU_CHUNK_TOKENS, chunked_token_nll, default_chunk_tokens, fused_token_nll_fn
from tests.eval_loaders import tiny_model


def test_cpu_chunk_is_counted_in_tokens_not_bytes():
    """An 8 MiB chunk was 41 tokens at a 50k vocabulary and cost 1.6x at 2 threads."""
    for vocab in (4_096, 32_768, 50_257, 100_352):
        assert default_chunk_tokens("cpu", vocab) == CPU_CHUNK_TOKENS >= 1024
    assert default_chunk_tokens("cuda", 100_352) >= 2_048


class FakeLigerFunction:
    """liger_kernel.ops.LigerFusedLinearCrossEntropyFunction (0.8.5) as the engine calls it:
    same positional signature and defaults, a 4-tuple back, float32 per-token loss for 'none'."""

    calls: list = []

    @staticmethod
    def apply(_input, weight, target, bias=None, ce_weight=None, ignore_index=-100, lse_square_scale=0.0,
              label_smoothing=0.0, reduction="mean", softcap=None, return_z_loss=False, accum_dtype=None,
              use_token_scaling=False, return_token_accuracy=False, return_predicted_tokens=False, ce_impl=None,
              ce_mode=None, chunk_mem_const=1):
        assert reduction in {"mean", "sum", "none"} and (softcap is None or softcap > 0)
        FakeLigerFunction.calls.append(dict(reduction=reduction, softcap=softcap, bias=bias))
        logits = (_input @ weight.t()).float()
        if softcap is not None:
            logits = softcap * torch.tanh(logits / softcap)
        loss = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction=reduction)
        return loss, None, None, None


@pytest.fixture
def fake_liger(monkeypatch):
    package = types.ModuleType("liger_kernel")
    ops = types.ModuleType("liger_kernel.ops")
    ops.LigerFusedLinearCrossEntropyFunction = FakeLigerFunction
    monkeypatch.setitem(sys.modules, "liger_kernel", package)
    monkeypatch.setitem(sys.modules, "liger_kernel.ops", ops)
    FakeLigerFunction.calls = []
    return FakeLigerFunction


@pytest.mark.parametrize("arch", ["llama", "gemma2"])  # gemma2: softcapped logits
def test_fused_path_is_used_on_cuda_only_and_matches_chunked(fake_liger, arch):
    head = OutputHead.of(tiny_model(arch))
    assert fused_token_nll_fn(head, torch.device("cpu")) is None
    fused = fused_token_nll_fn(head, torch.device("cuda"))
    assert fused is not None
    states, targets = torch.randn(50, 32), torch.randint(0, 256, (50,))
    with torch.inference_mode():
        torch.testing.assert_close(fused(states, targets), chunked_token_nll(head, states, targets, 7))
    assert fake_liger.calls[-1]["reduction"] == "none" and fake_liger.calls[-1]["softcap"] == head.softcap


def test_fused_path_is_skipped_where_it_cannot_serve(fake_liger, monkeypatch):
    model = tiny_model("llama")
    model.config.logit_scale = 0.5  # a transform the kernel does not apply
    assert fused_token_nll_fn(OutputHead.of(model), torch.device("cuda")) is None
    plain = OutputHead.of(tiny_model("llama"))
    monkeypatch.setenv("SUBNET_EVAL_FUSED_CE", "0")
    assert fused_token_nll_fn(plain, torch.device("cuda")) is None


def test_without_liger_the_chunked_path_serves(monkeypatch):
    monkeypatch.setitem(sys.modules, "liger_kernel.ops", None)  # import raises ImportError
    assert fused_token_nll_fn(OutputHead.of(tiny_model("llama")), torch.device("cuda")) is None
