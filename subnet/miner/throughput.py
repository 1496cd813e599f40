"""Training throughput: tokens per second and model FLOP utilisation (MFU) against the GPU's bf16 peak."""

from __future__ import annotations

import time

import torch


def guess_peak_flops(device: torch.device) -> float:
    """The device's dense bf16 peak (subnet.devices.BF16_PEAK_FLOPS), 0.0 when unknown or not a GPU."""
    from subnet.devices import bf16_peak_flops, device_name

    if device.type != "cuda":
        return 0.0
    return bf16_peak_flops(device_name(device)) or 0.0


class Throughput:
    """Tokens per second since the end of the first step this run took (which includes warm-up/compile)."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.tokens = 0

    def add(self, tokens: int, *, first: bool, device: torch.device) -> None:
        if first:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            self.start = time.perf_counter()
            return
        self.tokens += tokens

    def tokens_per_s(self) -> float:
        if self.start is None or self.tokens == 0:
            return 0.0
        return self.tokens / max(time.perf_counter() - self.start, 1e-9)

    def mfu(self, n_params: int, peak_flops: float) -> float | None:
        if not peak_flops:
            return None
        return 6 * n_params * self.tokens_per_s() / peak_flops
