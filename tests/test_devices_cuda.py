"""Devices on an emulated CUDA host (tests/cuda_emulation.py): every form resolves to indexed devices,
and the scoring worker's CUDA branch scores a model instead of failing it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from subnet.devices import DeviceError, prepare_device, resolve_device, resolve_devices
from subnet.eval.worker_process import score_in_worker
from tests.eval_loaders import random_docs, tiny_model
from tests.test_eval_engine import reference_nll


@pytest.fixture
def cuda_flags():
    """Whatever a test does to the CUDA numerics flags is undone afterwards."""
    matmul = torch.backends.cuda.matmul
    names = ("allow_bf16_reduced_precision_reduction", "allow_fp16_reduced_precision_reduction", "allow_tf32")
    saved = {n: getattr(matmul, n) for n in names}, torch.backends.cudnn.allow_tf32
    yield matmul
    for name, value in saved[0].items():
        setattr(matmul, name, value)
    torch.backends.cudnn.allow_tf32 = saved[1]


def test_cuda_device_forms_resolve_to_indexed_devices(emulated_cuda):
    assert resolve_devices("auto") == ["cuda:0"]
    assert resolve_devices("cuda") == ["cuda:0"]
    emulated_cuda.current = 1
    assert resolve_devices("cuda") == ["cuda:1"]  # the current device, as torch means "cuda"
    assert resolve_devices("cuda:1") == ["cuda:1"]
    assert resolve_devices("cuda:all") == ["cuda:0", "cuda:1"]
    assert resolve_devices("cuda:1, cuda:0") == ["cuda:1", "cuda:0"]
    assert resolve_devices(["cuda:0", "cuda:1"]) == ["cuda:0", "cuda:1"]
    assert resolve_device("cpu") == "cpu"
    for bad, why in [("cuda:2", "2 CUDA device"), ("cuda:0,cuda:0", "twice"), ("cpu,cuda:0", "mixed"),
                     ("auto,cuda:1", "stand alone"), ("tpu", "unknown device"), ("mps", "unsupported"), ("", "no device")]:
        with pytest.raises(DeviceError, match=why):
            resolve_devices(bad)
    with pytest.raises(DeviceError, match="one device"):
        resolve_device("cuda:all")


def test_without_cuda_auto_is_cpu_and_cuda_is_refused():
    assert resolve_devices("auto") == ["cpu"]
    with pytest.raises(DeviceError, match="no CUDA device"):
        resolve_devices("cuda")


def test_prepare_device_selects_an_indexed_gpu_with_full_precision_reductions(emulated_cuda, cuda_flags):
    cuda_flags.allow_bf16_reduced_precision_reduction = True
    cuda_flags.allow_tf32 = True
    emulated_cuda.current = 1
    assert prepare_device("cuda") == torch.device("cuda", 1)
    assert prepare_device("cuda:0") == torch.device("cuda", 0)
    assert emulated_cuda.named("set_device") == [("set_device", 1), ("set_device", 0)]
    assert not cuda_flags.allow_bf16_reduced_precision_reduction and not cuda_flags.allow_tf32
    assert not cuda_flags.allow_fp16_reduced_precision_reduction and not torch.backends.cudnn.allow_tf32
    assert prepare_device("cpu") == torch.device("cpu")
    # What a real GPU host does with an unindexed device (the bug of issue 26): the stand-in agrees.
    with pytest.raises(ValueError, match="specified index"):
        torch.cuda.set_device(torch.device("cuda"))


def _request(tmp_path, device, loader="tests.eval_loaders:load_saved"):
    from subnet.competitions import DEFAULT_COMPETITIONS
    from subnet.eval.docfile import save_documents

    model = tiny_model("llama")
    model.save_pretrained(tmp_path / "model")
    docs = random_docs([40, 30, 25, 12], seed=3)
    path = save_documents(docs, tmp_path / "docs.npz")
    request = dict(key="m", model_dir=str(tmp_path / "model"), competition=DEFAULT_COMPETITIONS["tiny"],
                   docs_path=str(path), result_path=str(tmp_path / "r.json"), device=device, loader=loader)
    return request, model, docs


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_worker_cuda_branch_scores_in_bf16_on_an_indexed_device(tmp_path, emulated_cuda, cuda_flags, device):
    import base64

    from subnet.eval.types import DocLosses

    request, model, docs = _request(tmp_path, device)
    result = score_in_worker(request)
    assert result["error"] == "", result["detail"]
    want = 1 if device == "cuda:1" else 0
    assert emulated_cuda.named("set_device") == [("set_device", want)]
    assert ("synchronize", want) in emulated_cuda.calls  # timing waits for the GPU's work
    losses = DocLosses.from_bytes(base64.b64decode(result["losses"]))
    expected = np.array([reference_nll(model, t) for t in docs.tokens])
    # Scored in bf16 (the CUDA dtype): close to the float32 reference, but not float32-exact.
    rel = np.abs(losses.nll_sum - expected) / expected
    assert rel.max() < 2e-2 and rel.max() > 1e-7
    assert result["tokens_per_s"] > 0


def test_worker_cuda_out_of_memory_is_the_devices_memory_limit(tmp_path, emulated_cuda, cuda_flags, monkeypatch):
    request, _, _ = _request(tmp_path, "cuda:1")

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    monkeypatch.setattr("subnet.eval.engine.compute_losses", oom)
    result = score_in_worker(request)
    assert result["error"] == "memory_limit" and "over the device's memory (cuda:1)" in result["detail"]
