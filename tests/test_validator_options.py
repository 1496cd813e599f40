"""`subnet validator run`'s options are written once, on ValidatorConfig's fields (issue 29): the
command line with no options gives the dataclass's own defaults, and every option reaches its field."""

from __future__ import annotations

import dataclasses
import os

import subnet.validator.daemon as daemon
from subnet.commands.validator_commands import run_from_argv
from subnet.validator.config import ValidatorConfig


def config_of(monkeypatch, *args: str) -> ValidatorConfig:
    for name in [k for k in os.environ if k.startswith(("SUBNET_", "BT_", "WANDB_", "HF_ENDPOINT"))]:
        monkeypatch.delenv(name)
    seen = {}
    monkeypatch.setattr(daemon, "run_validator", lambda config, **_: seen.setdefault("config", config) and 0)
    assert run_from_argv(list(args)) == 0
    return seen["config"]


def test_no_options_give_the_dataclass_defaults(monkeypatch):
    config = config_of(monkeypatch, "--netuid", "9", "--device", "cpu")
    assert config == ValidatorConfig(netuid=9)


def test_each_option_reaches_its_field(monkeypatch, tmp_path):
    config = config_of(monkeypatch, "--netuid", "9", "--device", "cpu", "--dont-set-weights", "--min-free-disk-gb",
                       "0.5", "--competition", "b3", "--subtensor.chain_endpoint", "ws://127.0.0.1:9944",
                       "--wandb.project", "p", "--wandb.off", "--api-port", "0", "--max-rounds", "3",
                       "--state-dir", str(tmp_path))
    assert dataclasses.asdict(config) == dataclasses.asdict(ValidatorConfig(
        netuid=9, set_weights=False, min_free_disk_bytes=512 * 1024**2, competitions=("b3",),
        network="ws://127.0.0.1:9944", wandb_project=None, api_port=0, max_rounds=3, state_dir=tmp_path))
