"""`subnet validator run --device auto` on a host whose torch reports CUDA (emulated, see
tests/cuda_emulation.py): the device resolves to an indexed GPU, every model is scored by a worker
process on it, and several GPUs get one worker each. Before issue 26 every model's outcome was
`error` (ValueError from torch.cuda.set_device(torch.device("cuda")))."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.validator_fixtures import LocalSubnet, competitions_file, query_state, train_snapshots

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
WINDOW, MARGIN = 10, 2


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_snapshots(tmp_path_factory.mktemp("cuda-models"), {"weak": 0, "strong": 30})


@pytest.mark.parametrize("device, workers", [("auto", [0]), ("cuda:all", [0, 1])])
def test_validator_on_an_emulated_gpu_host_scores_every_model(tmp_path, trained, device, workers):
    subnet = LocalSubnet(tmp_path / "subnet", block_time=0.2)
    try:
        for label in ("weak", "strong"):
            subnet.publish(label, trained[label])
            subnet.chain.advance(3)
        subnet.advance_to(max(m.block for m in subnet.miners.values()) + WINDOW + MARGIN)
        log = tmp_path / "cuda-calls.jsonl"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("SUBNET_", "BT_"))},
               "OMP_NUM_THREADS": "1", "SUBNET_TEST_EMULATE_CUDA": "2", "SUBNET_TEST_CUDA_LOG": str(log),
               "SUBNET_EVAL_FUSED_CE": "0",  # Liger under the interpreter is tested on its own; keep this quick
               "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "emulated_cuda_site"), str(REPO)])}
        state_dir = tmp_path / "state"
        proc = subprocess.run([
            sys.executable, "-m", "subnet", "validator", "run", "--network", subnet.network,
            "--netuid", str(subnet.netuid), "--wallet.name", "validator", "--wallet.path", str(subnet.wallet_path),
            "--device", device, "--state-dir", str(state_dir), "--store", f"local:{subnet.store.root}",
            "--competitions-file", str(competitions_file(tmp_path / "c.json")), "--api-port", "0",
            "--max-rounds", "1", "--round-interval-s", "0", "--min-free-disk-gb", "0", "--log-format", "plain",
            "--seed-window-blocks", str(WINDOW), "--eligibility-margin-blocks", str(MARGIN),
        ], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "device cuda:0" in proc.stderr if device == "auto" else "device cuda:0,cuda:1" in proc.stderr
        results = query_state(state_dir / "state.sqlite", "SELECT hotkey, error FROM results")
        assert len(results) == 2 and all(error == "" for _, error in results), proc.stderr[-4000:]
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        daemon_pid = min(pid for pid, *_ in calls) if calls else None
        selected = sorted({call[2] for call in calls if call[1] == "set_device"})
        assert selected == workers, calls  # each worker selected its own indexed GPU
        assert daemon_pid is not None and any(call[1] == "synchronize" for call in calls)
    finally:
        subnet.close()
