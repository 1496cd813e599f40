"""scripts/gpu_check.py is known to work before a GPU is lent: its tiny run on CPU and on an emulated
CUDA host (tests/cuda_emulation.py) print the same JSON keys, and the GPU-only parts of it run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import bench_eval  # noqa: E402
import gpu_check  # noqa: E402

KEYS = {"device", "device_index", "mode", "bf16_peak_flops", "versions", "shapes", "exactness", "throughput",
        "kernels", "projected_b3_round_s", "agreement_bf16", "round_tokens", "seconds"}


def keys(tree, prefix=""):
    """Every key path of a JSON object (names of architectures included)."""
    if not isinstance(tree, dict):
        return set()
    return {p for k, v in tree.items() for p in {prefix + k} | keys(v, prefix + k + ".")}


@pytest.fixture(scope="module")
def cpu_run():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--device", "cpu"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_gpu_check_help_documents_the_one_shot_run():
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--help"], capture_output=True,
                         text=True, timeout=120).stdout
    for words in ("under 8 minutes", "one JSON object", "exactness", "subnet-9", "subnet-29",
                  "kernels", "agreement_bf16", "projected_b3_round_s", "--device cpu"):
        assert words in out, words


def test_gpu_check_on_cpu_runs_every_check_tiny(cpu_run):
    assert set(cpu_run) == KEYS and cpu_run["mode"] == "tiny" and cpu_run["device"] == "cpu"
    for arch in gpu_check.ARCHS:
        exact = cpu_run["exactness"][arch]
        assert exact["float32"]["max_rel"] < 1e-6  # the engine against the float32 batch-1 reference
        assert exact["bf16"]["max_rel"] < 2e-2 and exact["probe_bf16_hidden_rel"] < 0.1
        speed = cpu_run["throughput"][arch]
        assert {"engine", "sn9_packed", "sn29_batch1"} <= set(speed)
        assert speed["engine_max_rel_vs_sn29"] < 2e-2
        assert cpu_run["projected_b3_round_s"][arch] > 0
    assert cpu_run["kernels"]["llama"] == {"liger_tokens": 0, "liger": False, "flash_varlen_calls": 0,
                                           "flash_varlen": False, "attention": "sdpa"}
    assert len(cpu_run["agreement_bf16"]["runs"]) == 4


def test_gpu_check_gpu_branches_on_an_emulated_cuda_host(cpu_run, emulated_cuda, monkeypatch, capsys):
    from tests.cuda_emulation import interpretable_liger

    interpretable_liger(monkeypatch)  # real Liger, in Triton's interpreter: a few documents keep it quick
    for key, value in dict(exact_docs=4, speed_docs=4, agree_docs=4, seq=64).items():
        monkeypatch.setitem(gpu_check.TINY, key, value)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 PCIe")
    result = gpu_check.main(["--device", "cuda:1", "--tiny", "--archs", "llama"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == json.loads(json.dumps(result))
    assert keys(result) == {k for k in keys(cpu_run) if "qwen2" not in k and "gemma2" not in k}  # same keys
    assert result["device_index"] == "cuda:1" and result["bf16_peak_flops"] == 756e12  # not the SXM figure
    assert result["kernels"]["llama"]["liger"] and result["kernels"]["llama"]["liger_tokens"] > 0
    assert ("set_device", 1) in emulated_cuda.calls
    assert result["throughput"]["llama"]["engine"]["mfu"] > 0
    assert result["exactness"]["llama"]["bf16"]["max_rel"] < 2e-2


def test_bench_eval_builds_models_as_the_loader_does(emulated_cuda):
    args = bench_eval.parse_args(["--device", "cuda:1", "--attn", "flash_attention_2"])
    reference = bench_eval.build_model(args, dtype=torch.float32)
    assert reference.config._attn_implementation == "sdpa"  # flash takes half precision only
    bf16 = bench_eval.build_model(argparse_namespace(args, attn="sdpa"))
    assert bf16.model.embed_tokens.weight.dtype == torch.bfloat16
    assert bf16.model.rotary_emb.inv_freq.dtype == torch.float32  # not rounded to bf16
    assert bench_eval.with_device(["--docs", "3", "--device", "cuda", "--device=cpu"], "cuda:1") == [
        "--docs", "3", "--device", "cuda:1"]


def argparse_namespace(args, **changes):
    import argparse

    return argparse.Namespace(**{**vars(args), **changes})


def test_bf16_peaks_tell_h100_parts_apart():
    from subnet.devices import bf16_peak_flops

    assert bf16_peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert bf16_peak_flops("NVIDIA H100 PCIe") == 756e12
    assert bf16_peak_flops("NVIDIA H100 NVL") == 835e12
    assert bf16_peak_flops("NVIDIA H200") == 989e12 and bf16_peak_flops("Tesla T4") is None
