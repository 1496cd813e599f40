"""Which torch devices a process runs on: one place turns what an operator typed into indexed devices.

`--device` takes `auto` (the current CUDA device when torch reports one, else cpu), `cpu`, `cuda`
(the current CUDA device), `cuda:N`, `cuda:all` (every visible GPU) or a comma-separated list
(`cuda:0,cuda:1`): one scoring worker per device. Every CUDA device comes back with its index,
because `torch.cuda.set_device(torch.device("cuda"))` raises ValueError, which made every model
fail on a GPU host with the default device.

`prepare_device` is what a process that scores calls first: it selects the device and switches
off the CUDA numerics that differ between GPUs or runs (bf16/fp16 reduced-precision reductions in
cuBLAS, TF32), so that validators on different GPUs compute the same losses as closely as kernels allow.
"""

from __future__ import annotations

from typing import Sequence

import torch

ALL_GPUS = "cuda:all"


class DeviceError(ValueError):
    """A device string names no device this host has."""


def resolve_devices(spec: str | Sequence[str]) -> list[str]:
    """Indexed devices, in order, for a `--device` value (see the module docstring)."""
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s and s.strip()]
    if not items:
        raise DeviceError("no device given: expected auto | cpu | cuda | cuda:N | cuda:all | a comma-separated list")
    if len(items) > 1 and any(i in ("auto", ALL_GPUS) for i in items):
        raise DeviceError(f"'auto' and '{ALL_GPUS}' stand alone, got {spec!r}")
    if items == ["auto"]:
        return [_indexed("cuda")] if torch.cuda.is_available() else ["cpu"]
    if items == [ALL_GPUS]:
        count = _cuda_count(ALL_GPUS)
        return [f"cuda:{i}" for i in range(count)]
    devices = [_indexed(item) for item in items]
    if len(set(devices)) != len(devices):
        raise DeviceError(f"a device is listed twice in {spec!r}")
    if "cpu" in devices and len(devices) > 1:
        raise DeviceError(f"cpu cannot be mixed with GPUs in {spec!r}")
    return devices


def resolve_device(spec: str) -> str:
    """The one indexed device of a single-device command (miner, model check, benchmarks)."""
    devices = resolve_devices(spec)
    if len(devices) != 1:
        raise DeviceError(f"this command runs on one device; {spec!r} names {len(devices)}")
    return devices[0]


def prepare_device(device: str | torch.device) -> torch.device:
    """Select `device` for this process (indexed) and make its numerics reproducible; the device."""
    device = torch.device(device)
    if device.type != "cuda":
        return device
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    torch.cuda.set_device(device)
    reproducible_cuda_numerics()
    return device


def reproducible_cuda_numerics() -> None:
    """Full-precision accumulation in cuBLAS: bf16/fp16 reduced-precision reductions and TF32 depend on
    the GPU and the kernel cuBLAS picks for a shape, so two validators could round differently."""
    matmul = torch.backends.cuda.matmul
    matmul.allow_bf16_reduced_precision_reduction = False
    matmul.allow_fp16_reduced_precision_reduction = False
    matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def _indexed(item: str) -> str:
    try:
        device = torch.device(item)
    except RuntimeError as exc:
        raise DeviceError(f"unknown device {item!r}: expected auto | cpu | cuda | cuda:N | {ALL_GPUS}") from exc
    if device.type == "cpu":
        return "cpu"
    if device.type != "cuda":
        raise DeviceError(f"unsupported device {item!r}: expected cpu or cuda")
    count = _cuda_count(item)
    index = torch.cuda.current_device() if device.index is None else device.index
    if index >= count:
        raise DeviceError(f"device {item!r}: this host has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return f"cuda:{index}"


def _cuda_count(item: str) -> int:
    if not torch.cuda.is_available():
        raise DeviceError(f"device {item!r}: torch reports no CUDA device here (use cpu or auto)")
    return torch.cuda.device_count()


# Dense bf16 tensor-core peak FLOP/s by device name (vendor data sheets; the sparse figures halved), for
# model FLOP utilisation. Most specific names first: an H100 PCIe is not an H100 SXM.
BF16_PEAK_FLOPS = (
    ("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H200 NVL", 835e12), ("H100", 989e12), ("H200", 989e12),
    ("GH200", 989e12), ("B200", 2250e12), ("A100", 312e12), ("L40S", 362e12), ("A10G", 125e12), ("L4", 121e12),
    ("4090", 165e12), ("3090", 71e12),
)


def bf16_peak_flops(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU named `device_name` (e.g. torch.cuda.get_device_name(i)), or None."""
    return next((peak for key, peak in BF16_PEAK_FLOPS if key in device_name), None)


def device_name(device: str | torch.device) -> str:
    """The name of this very device ('cpu' for the CPU): cuda:1's own name, not device 0's."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
