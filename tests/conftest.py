"""Test-wide settings: property tests are reproducible in CI (CI=true) and explore freely elsewhere."""

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# No test machine has a GPU: Triton kernels (Liger's fused cross-entropy) run in Triton's interpreter,
# which must be chosen before Triton is first imported. A GPU machine keeps its compiled kernels.
if not os.environ.get("CUDA_VISIBLE_DEVICES") and not os.path.exists("/dev/nvidia0"):
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def emulated_cuda(monkeypatch):
    """Two emulated CUDA devices for one test (tests/cuda_emulation.py); tensors still live on the CPU."""
    from tests.cuda_emulation import CudaOnCpu, install

    emulator = install(2, setattr_=monkeypatch.setattr)
    with CudaOnCpu():
        yield emulator
