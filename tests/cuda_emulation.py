"""A CUDA host emulated on CPU, so the GPU-only branches of the real code run in CI without a GPU.

The seams are the narrowest that make torch "report CUDA":
- stand-ins for `torch.cuda` (is_available, device_count, current_device, set_device, synchronize,
  empty_cache, the memory counters, device names and properties). `set_device` validates its argument
  with torch's own `_get_device_index`, so an unindexed `torch.device("cuda")` raises the ValueError a
  real GPU host raises;
- a TorchFunctionMode that places every tensor asked for on a CUDA device on the CPU instead (factory
  functions' `device=`, `Tensor.to`, `Module.to`, `Tensor.cuda`; pinned host memory is plain memory), so `torch.device("cuda:0")` flows
  through the code under test while the arithmetic runs on CPU.

`install()` does it for this process (used by `sitecustomize.py` in tests/emulated_cuda_site/ for the
worker processes a spawned validator starts); the `emulated_cuda` fixture does it for one test.
Calls are recorded in `EMULATOR.calls` and, with a log path, appended to that file as JSON lines.
"""

from __future__ import annotations

import json
import os
import types
from dataclasses import dataclass, field

import torch
from torch.overrides import TorchFunctionMode

LOG_ENV = "SUBNET_TEST_CUDA_LOG"
COUNT_ENV = "SUBNET_TEST_EMULATE_CUDA"


@dataclass
class Emulator:
    count: int = 1
    current: int = 0
    log_path: str | None = None
    calls: list[tuple] = field(default_factory=list)
    peak: int = 0

    def record(self, *call) -> None:
        self.calls.append(call)
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write(json.dumps([os.getpid(), *call]) + "\n")

    def named(self, name: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == name]

    # ------------------------------------------------------------------ torch.cuda stand-ins

    def index(self, device=None) -> int:
        if device is None:
            return self.current
        index = torch._utils._get_device_index(device, optional=False, allow_cpu=False)
        if not 0 <= index < self.count:
            raise RuntimeError(f"CUDA error: invalid device ordinal {index} (emulating {self.count})")
        return index

    def set_device(self, device) -> None:
        index = self.index(device)  # ValueError for torch.device("cuda"), as on a real host
        self.record("set_device", index)
        self.current = index

    def synchronize(self, device=None) -> None:
        self.record("synchronize", self.current if device is None else self.index(device))

    def empty_cache(self) -> None:
        self.record("empty_cache", self.current)

    def device_name(self, device=None) -> str:
        return f"NVIDIA H100 PCIe (emulated {self.index(device)})"

    def properties(self, device=None):
        return types.SimpleNamespace(name=self.device_name(device), total_memory=80 * 1024**3, major=9, minor=0,
                                     multi_processor_count=114)

    def patches(self) -> dict:
        return {
            "is_available": lambda: True,
            "device_count": lambda: self.count,
            "current_device": lambda: self.current,
            "set_device": self.set_device,
            "synchronize": self.synchronize,
            "empty_cache": self.empty_cache,
            "get_device_name": self.device_name,
            "get_device_properties": self.properties,
            "memory_allocated": lambda device=None: 0,
            "max_memory_allocated": lambda device=None: self.peak,
            "reset_peak_memory_stats": lambda device=None: self.record("reset_peak_memory_stats", self.current),
            "mem_get_info": lambda device=None: (80 * 1024**3, 80 * 1024**3),
        }


class CudaOnCpu(TorchFunctionMode):
    """Every tensor placed on a CUDA device lands on the CPU."""

    def __torch_function__(self, func, types_, args=(), kwargs=None):
        if func is torch.device:  # the device object keeps saying cuda: the code under test branches on it
            return func(*args, **(kwargs or {}))
        if func in (torch.Tensor.cuda, torch.Tensor.pin_memory):
            return args[0]
        args = tuple(_cpu(a) for a in args)
        kwargs = {k: _cpu(v) for k, v in (kwargs or {}).items()}
        if kwargs.get("pin_memory"):  # page-locked host memory is the CUDA allocator's; safetensors asks for it
            kwargs["pin_memory"] = False
        return func(*args, **kwargs)


def _cpu(value):
    if isinstance(value, torch.device) and value.type == "cuda":
        return torch.device("cpu")
    if isinstance(value, str) and (value == "cuda" or value.startswith("cuda:")):
        return "cpu"
    return value


EMULATOR: Emulator | None = None


def install(count: int = 1, log_path: str | None = None, setattr_=setattr) -> Emulator:
    """Emulate `count` CUDA devices in this process (for good: worker processes end anyway)."""
    global EMULATOR
    EMULATOR = Emulator(count=count, log_path=log_path)
    for name, fn in EMULATOR.patches().items():
        setattr_(torch.cuda, name, fn)
    return EMULATOR


def install_from_env() -> Emulator | None:
    """What tests/emulated_cuda_site/sitecustomize.py runs in every process of an emulating test."""
    count = os.environ.get(COUNT_ENV)
    if not count:
        return None
    emulator = install(int(count), os.environ.get(LOG_ENV))
    CudaOnCpu().__enter__()  # for the life of the process
    return emulator


# ---------------------------------------------------------------------- Triton interpreter shims


def interpretable_liger(monkeypatch) -> None:
    """Liger's kernels under TRITON_INTERPRET=1, as compiled Triton runs them on a GPU.

    Two gaps of the interpreter (Triton 3.x): it passes a float kernel argument (Liger's `softcap`) as a
    Python float where compiled Triton passes an fp32 scalar, and libdevice's `tanh` has no interpreter
    implementation (it returns None). The shims give both their compiled meaning.
    """
    import numpy as np
    import triton.language as tl
    from triton.runtime import interpreter

    import liger_kernel.ops.cross_entropy as ce

    if not os.environ.get("TRITON_INTERPRET"):
        raise RuntimeError("TRITON_INTERPRET=1 must be set before Triton is imported (tests/conftest.py sets it)")
    original = interpreter._implicit_cvt

    def implicit_cvt(arg):
        if isinstance(arg, float):
            return tl.tensor(interpreter.TensorHandle(np.array([arg], dtype=np.float32), tl.float32), tl.float32)
        return original(arg)

    def tanh(x, _semantic=None):
        return tl.tensor(interpreter.TensorHandle(np.tanh(x.handle.data), x.handle.dtype.scalar), x.type)

    monkeypatch.setattr(interpreter, "_implicit_cvt", implicit_cvt)
    monkeypatch.setattr(ce, "tanh", tanh)


# ---------------------------------------------------------------------- flash-attention on CPU


@dataclass
class CpuFlashAttention:
    """flash-attn 2's two entry points as exact float32 attention on CPU, behind transformers' real
    dispatch (`_flash_attention_forward`: packed-sequence detection, cu_seqlens from position ids).

    `varlen` calls are recorded with their cu_seqlens, so a test sees which documents were kept apart."""

    varlen_calls: list = field(default_factory=list)
    dense_calls: int = 0

    def flash_attn_varlen_func(self, q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None,
                               dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0,
                               deterministic=False):
        self.varlen_calls.append(cu_seqlens_q.tolist())
        assert torch.equal(cu_seqlens_q, cu_seqlens_k)
        bounds = cu_seqlens_q.tolist()
        parts = [_attend(q[a:b], k[a:b], v[a:b], softmax_scale, causal, window_size, softcap)
                 for a, b in zip(bounds[:-1], bounds[1:])]
        return torch.cat(parts)

    def flash_attn_func(self, q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1),
                        softcap=0.0, deterministic=False):
        self.dense_calls += 1  # every row is one sequence: what flash does without cu_seqlens
        return torch.stack([_attend(q[b], k[b], v[b], softmax_scale, causal, window_size, softcap)
                            for b in range(q.shape[0])])

    def install(self, monkeypatch) -> None:
        """Route transformers' flash_attention_2 to these functions (its checks for the package are not run:
        the engine's `set_attn_implementation` call is a separate seam)."""
        import transformers.modeling_flash_attention_utils as mfa

        import inspect

        funcs = (self.flash_attn_func, self.flash_attn_varlen_func, None, mfa._pad_input, mfa._unpad_input)
        process = mfa._lazy_define_process_function(self.flash_attn_varlen_func)
        # transformers >= 5.2x returns (flash kwargs, paged kwargs) processors; 5.18 returns the first alone.
        paged = "process_paged_kwargs_fn" in inspect.getsource(mfa._flash_attention_forward)
        processors = (process, dict) if paged else process
        monkeypatch.setattr(mfa, "lazy_import_flash_attention", lambda *a, **k: (funcs, processors))


def _attend(q, k, v, scale, causal, window, softcap):
    """(seq, heads, dim) attention in float32, grouped-query heads repeated, causal / window / softcap as flash."""
    n, heads, dim = q.shape
    k = k.repeat_interleave(heads // k.shape[1], dim=1)
    v = v.repeat_interleave(heads // v.shape[1], dim=1)
    scores = torch.einsum("qhd,khd->hqk", q.float(), k.float()) * (scale if scale is not None else dim ** -0.5)
    if softcap:
        scores = softcap * torch.tanh(scores / softcap)
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    allowed = (j <= i) if causal else torch.ones(n, n, dtype=torch.bool)
    if window[0] >= 0:
        allowed = allowed & (i - j <= window[0])
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v.float()).to(q.dtype)
