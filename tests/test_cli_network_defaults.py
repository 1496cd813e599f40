"""Defaults that are safe on day one, from the command line: what a mainnet validator scores, what a
miner's commands default to, and the device `--device auto` becomes on a CUDA host (emulated)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import subnet.validator.daemon as daemon
from subnet.commands.validator_commands import run_from_argv
from subnet.validator.daemon import resolve_competitions

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("SUBNET_", "BT_"))}


def devnet(tmp_path) -> str:
    """A devnet chain that exists (only `subnet devnet` creates one; a missing path is refused)."""
    from subnet.chain.local import LocalChain

    LocalChain(tmp_path / "chain.sqlite", netuid=1).close()
    return f"devnet:{tmp_path / 'chain.sqlite'}"


@pytest.fixture
def validator_config(monkeypatch):
    """Run `subnet validator run ARGS` up to the daemon and return the config it would run with."""
    for name in [k for k in os.environ if k.startswith(("SUBNET_", "BT_"))]:
        monkeypatch.delenv(name)
    seen = {}

    def fake_run(config, **_):
        seen["config"] = config
        return 0

    monkeypatch.setattr(daemon, "run_validator", fake_run)

    def run(*args: str):
        assert run_from_argv(["--api-port", "0", *args]) == 0
        return seen["config"]

    return run


@pytest.mark.parametrize("network", ["finney", "test", "local", "wss://entrypoint-finney.opentensor.ai:443"])
def test_off_devnet_the_default_competitions_are_the_subnets_and_never_tiny(validator_config, network):
    evaluated, known = resolve_competitions(validator_config("--netuid", "9", "--network", network))
    assert set(evaluated) == {"b3"}
    assert "tiny" not in known  # a commitment naming the toy is malformed on a real chain


def test_on_a_devnet_the_toy_competition_is_the_default(validator_config, tmp_path):
    evaluated, known = resolve_competitions(validator_config("--network", devnet(tmp_path)))
    assert set(evaluated) == {"tiny"} and {"tiny", "b3"} <= set(known)


def test_asking_for_tiny_on_finney_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "subnet", "validator", "run", "--netuid", "9", "--network",
                           "finney", "--competition", "tiny", "--api-port", "0"],
                          capture_output=True, text=True, timeout=120, env=CLEAN_ENV)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "'tiny'" in lines[0] and "only on a devnet" in lines[0]


def test_miner_default_competition_follows_the_network(monkeypatch, tmp_path):
    import subnet.miner.train as train_module
    from subnet.commands.miner_commands import app

    for name in [k for k in os.environ if k.startswith(("SUBNET_", "BT_"))]:
        monkeypatch.delenv(name)
    seen = []

    def fake_train(config, **_):
        seen.append(config.competition)
        raise ValueError("stop here")

    monkeypatch.setattr(train_module, "train", fake_train)
    runner = CliRunner()
    runner.invoke(app, ["train", "--out-dir", str(tmp_path / "a"), "--device", "cpu"])
    runner.invoke(app, ["train", "--out-dir", str(tmp_path / "b"), "--device", "cpu",
                        "--network", devnet(tmp_path)])
    runner.invoke(app, ["train", "--out-dir", str(tmp_path / "c"), "--device", "cpu", "--competition", "tiny"])
    assert seen == ["b3", "tiny", "tiny"]  # a toy run on purpose stays possible off the chain


def test_miner_cannot_upload_a_toy_model_to_finney(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "subnet", "miner", "upload", str(tmp_path), "--namespace", "a",
                           "--name", "b", "--network", "finney", "--netuid", "9", "--competition", "tiny"],
                          capture_output=True, text=True, timeout=120, env=CLEAN_ENV)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "only on a devnet" in lines[0]


# ----------------------------------------------------------------------------- --device on a CUDA host


@pytest.mark.parametrize("flag, resolved", [
    ("auto", "cuda:0"), ("cuda", "cuda:0"), ("cuda:1", "cuda:1"), ("cuda:all", "cuda:0,cuda:1"),
    ("cuda:1,cuda:0", "cuda:1,cuda:0"), ("cpu", "cpu"),
])
def test_validator_device_on_an_emulated_cuda_host_is_indexed(validator_config, emulated_cuda, tmp_path, flag,
                                                               resolved):
    config = validator_config("--network", devnet(tmp_path), "--device", flag)
    assert config.device == resolved


def test_validator_device_env_and_bad_devices(validator_config, emulated_cuda, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SUBNET_DEVICE", "cuda")  # the Dockerfile's and systemd units' way
    assert validator_config("--network", devnet(tmp_path)).device == "cuda:0"
    assert run_from_argv(["--network", devnet(tmp_path), "--device", "cuda:7"]) == 2
    assert "2 CUDA device" in capsys.readouterr().err


def test_validator_cuda_without_a_gpu_is_a_usage_error(validator_config, tmp_path, capsys):
    assert run_from_argv(["--network", devnet(tmp_path), "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert validator_config("--network", devnet(tmp_path)).device == "cpu"  # auto
