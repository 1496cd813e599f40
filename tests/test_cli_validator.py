"""`subnet validator run` as an operator meets it: real subprocesses, output captured as a file would be.

Setup mistakes (no keyfile, an unregistered hotkey, a port in use, a bad flag) must end the process
in seconds with one line and the right exit code (1: fix your setup, 2: fix the command line), and
a run whose output goes to a file must write dated, unwrapped lines (or JSON objects with
--log-format json).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from subnet.chain.base import ChainError
from subnet.chain.keys import create_wallet
from subnet.chain.local import LocalChain

ISO_LINE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2} (DEBUG|INFO|WARNING|ERROR) ")


@pytest.fixture()
def subnet(tmp_path):
    """A local chain with a registered validator and an unregistered hotkey, and a run() helper."""
    wallets = tmp_path / "wallets"
    validator = create_wallet(wallets, "validator")
    create_wallet(wallets, "stranger")
    chain_path = tmp_path / "chain.sqlite"
    with LocalChain(chain_path, netuid=1, block_time=0.5) as chain:
        chain.register(validator.hotkey.ss58_address, validator.coldkeypub.ss58_address, stake=1000.0,
                       validator_permit=True)
    (tmp_path / "store").mkdir()

    def run(*extra: str, wallet: str = "validator", timeout: float = 120) -> subprocess.CompletedProcess:
        args = [sys.executable, "-m", "subnet", "validator", "run", "--network", f"devnet:{chain_path}",
                "--wallet.path", str(wallets), "--wallet.name", wallet, "--store", f"local:{tmp_path / 'store'}",
                "--state-dir", str(tmp_path / "state"), "--scoring-mode", "inprocess", "--device", "cpu",
                "--round-interval-s", "0", "--max-rounds", "1", *extra]
        # A narrow "terminal" size must not matter when the output is not a terminal.
        env = {**os.environ, "COLUMNS": "40", "OMP_NUM_THREADS": "1"}
        env.pop("SUBNET_NETUID", None)
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)

    return run


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    lines = error_lines(proc)
    assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
    assert len(lines) == 1, f"expected one line, got:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_missing_keyfile_is_one_line_and_exit_1_before_any_round(subnet, tmp_path):
    proc = subnet("--api-port", "0", wallet="nobody")
    line = assert_one_line_error(proc, 1, "hotkey file", "not found", "nobody")
    assert line.startswith("error: ")
    assert not (tmp_path / "state").exists(), "nothing may be created before the keys are checked"


def test_unregistered_hotkey_is_one_line_and_exit_1(subnet):
    proc = subnet("--api-port", "0", wallet="stranger")
    # btcli cannot reach a devnet: the advice names the wallets `subnet devnet` registered (issue 29)
    assert_one_line_error(proc, 1, "is not registered on subnet 1", "btcli cannot register on a devnet",
                          "--wallet.path", "--wallet.name validator")


def test_port_in_use_is_one_line_and_exit_1(subnet):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = subnet("--api-port", str(port))
    assert_one_line_error(proc, 1, f"127.0.0.1:{port}", "--api-port")


@pytest.mark.parametrize("flags, fragment", [
    (["--log-level", "loud"], "--log-level"),
    (["--log-format", "xml"], "--log-format"),
    (["--network", "nowhere"], "unknown network 'nowhere'"),
    (["--no-such-flag"], "--no-such-flag"),
])
def test_usage_errors_are_one_line_and_exit_2(subnet, flags, fragment):
    assert_one_line_error(subnet(*flags), 2, fragment)


def test_netuid_is_required_off_devnet():
    from subnet.commands.validator_commands import run_from_argv

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUBNET_", "BT_"))}
    proc = subprocess.run([sys.executable, "-c", "import sys; from subnet.commands.validator_commands import run_from_argv; "
                           "sys.exit(run_from_argv(sys.argv[1:]))", "--network", "test"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert_one_line_error(proc, 2, "--netuid is required")
    assert callable(run_from_argv)


def test_bittensor_spellings_and_environment_are_honoured(monkeypatch, tmp_path):
    """--subtensor.chain_endpoint, --logging.debug, --wandb.off and btcli's BT_* variables reach the config."""
    import subnet.validator.daemon as daemon
    from subnet.commands.validator_commands import run_from_argv

    seen = {}

    def fake_run(config, **_):
        seen["config"] = config
        return 0

    monkeypatch.setattr(daemon, "run_validator", fake_run)
    monkeypatch.setenv("BT_WALLET", "coldkey-from-env")
    monkeypatch.setenv("BT_WALLET_HOTKEY", "hot-from-env")
    monkeypatch.setenv("WANDB_PROJECT", "some-project")
    code = run_from_argv(["--netuid", "9", "--subtensor.chain_endpoint", "ws://127.0.0.1:9944", "--logging.debug",
                          "--wandb.off", "--device", "cpu", "--state-dir", str(tmp_path)])
    assert code == 0
    config = seen["config"]
    assert (config.network, config.netuid) == ("ws://127.0.0.1:9944", 9)
    assert (config.wallet_name, config.wallet_hotkey) == ("coldkey-from-env", "hot-from-env")
    assert config.wandb_project is None
    import logging

    assert logging.getLogger().level == logging.DEBUG


def test_every_option_has_help_and_h_works():
    import typer

    from subnet.commands.validator_commands import app

    command = typer.main.get_command(app).commands["run"]
    missing = [p.name for p in command.params if not getattr(p, "help", None)]
    assert not missing, f"options without help: {missing}"
    proc = subprocess.run([sys.executable, "-m", "subnet", "validator", "run", "-h"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0 and "--subtensor.network" in proc.stdout


def test_run_to_a_file_writes_dated_unwrapped_lines(subnet):
    proc = subnet("--api-port", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and all(ISO_LINE.match(line) for line in lines), proc.stderr
    banner = next(line for line in lines if "subnet validator" in line)
    # The whole banner on one line, though COLUMNS=40: nothing wraps in a file.
    for fragment in ("commit", "netuid 1", "hotkey", "uid 0", "competitions tiny", "device cpu", "status API"):
        assert fragment in banner
    assert len(banner) > 40
    assert any(re.search(r"round \d+ started at block \d+", line) for line in lines)
    assert any(re.search(r"round \d+ tiny: block \d+, 0 scored", line) for line in lines)


def test_json_log_format_writes_one_object_per_line(subnet):
    proc = subnet("--api-port", "0", "--log-format", "json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    assert records and all({"ts", "level", "logger", "message"} <= set(r) for r in records)
    start = next(r for r in records if r.get("event") == "start")
    assert start["uid"] == 0 and start["competitions"] == ["tiny"] and start["netuid"] == 1
    assert any(r.get("event") == "round" and r["competition"] == "tiny" for r in records)


def test_no_completed_round_means_a_failing_exit_code(tmp_path):
    """A validator whose every round fails must not exit 0 (it did: "0 completed, 2 failed", exit 0)."""
    from subnet.validator.config import ValidatorConfig
    from subnet.validator.context import RoundDeps
    from subnet.validator.daemon import run_validator
    from subnet.validator.state import ValidatorState

    class DownChain(LocalChain):
        def metagraph(self):
            raise ChainError("node unreachable", code="connection")

    config = ValidatorConfig(network=f"devnet:{tmp_path / 'c.sqlite'}", state_dir=tmp_path / "state", api_port=0,
                             max_rounds=1, round_interval_s=0, max_chain_backoff_s=0.01)
    chain = DownChain(tmp_path / "c.sqlite")
    deps = RoundDeps(chain=chain, store=None, state=ValidatorState(config.db_path), config=config, competitions={},
                     known_competitions={}, source_for=None, scorer=None)
    assert run_validator(config, deps=deps) == 1


def test_version_is_visible_in_cli_healthz_and_metrics(tmp_path):
    import urllib.request

    from subnet import __version__, git_commit
    from subnet.validator.api import StatusServer, build_app
    from subnet.validator.metrics import ValidatorMetrics
    from subnet.validator.state import ValidatorState

    proc = subprocess.run([sys.executable, "-m", "subnet", "--version"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and __version__ in proc.stdout and git_commit() in proc.stdout
    metrics = ValidatorMetrics()
    text = metrics.render().decode()
    assert f'validator_build_info{{commit="{git_commit()}"' in text and f'version="{__version__}"' in text
    assert "process_resident_memory_bytes" in text and "validator_last_weights_set_timestamp_seconds 0.0" in text
    state = ValidatorState(tmp_path / "s.sqlite")
    server = StatusServer(build_app(state, metrics), "127.0.0.1", 0)
    port = server.start()
    try:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read()
        except urllib.error.HTTPError as e:  # 503 before the first round; the body is the same shape
            body = e.read()
    finally:
        server.stop()
        state.close()
    health = json.loads(body)
    assert health["version"] == __version__ and health["commit"] == git_commit()
