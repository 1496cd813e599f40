"""One error boundary for every command (issue 29): a faulty invocation prints exactly one line on
stderr, starting with `error:`, and exits with the documented code (2 usage, 1 domain)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from subnet.commands.boundary import EXIT_DOMAIN, EXIT_USAGE, run_command
from subnet.commands.main import app

BAD_TOML = '[[competition]]\nid = "x"\nmax_seq_len = "12"\n'
UNKNOWN_DATASET_TOML = """[[competition]]
id = "t2"
tokenizer = "builtin:tiny"
max_seq_len = 256
min_params = 10000
max_params = 20000000
max_bytes = 134217728
architectures = ["LlamaForCausalLM"]
dataset = "fineweb-typo"
"""


@pytest.fixture
def world(tmp_path):
    from subnet.chain.local import LocalChain

    LocalChain(tmp_path / "chain.sqlite", netuid=1).close()
    (tmp_path / "bad.toml").write_text(BAD_TOML)
    (tmp_path / "dataset.toml").write_text(UNKNOWN_DATASET_TOML)
    (tmp_path / "model").mkdir()
    (tmp_path / "afile").write_text("x")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield tmp_path, sock.getsockname()[1]


def cases(tmp, port):
    devnet = f"devnet:{tmp / 'chain.sqlite'}"
    validator = ["validator", "run", "--api-port", "0", "--state-dir", str(tmp / "state")]
    model = ["model", "check", str(tmp / "model"), "--documents", "0"]
    return [
        (["--bogus"], EXIT_USAGE, "--bogus"),
        (["nosuchcommand"], EXIT_USAGE, "nosuchcommand"),
        (["version", "--x"], EXIT_USAGE, "--x"),
        ([*validator, "--network", "nope"], EXIT_USAGE, "--network"),
        ([*validator, "--network", devnet, "--netuid", "x"], EXIT_USAGE, "--netuid"),
        ([*validator, "--network", f"devnet:{tmp / 'typo.sqlite'}"], EXIT_USAGE, "subnet devnet"),
        ([*validator, "--network", "finney"], EXIT_USAGE, "--netuid is required"),
        ([*validator, "--network", devnet, "--store", "s3://x"], EXIT_USAGE, "--store"),
        ([*validator, "--network", devnet, "--competitions-file", str(tmp / "bad.toml")], EXIT_USAGE,
         f"--competitions-file {tmp / 'bad.toml'}: competition 'x': missing field(s)"),
        ([*validator, "--network", devnet, "--competitions-file", str(tmp / "dataset.toml")], EXIT_USAGE,
         f"--competitions-file {tmp / 'dataset.toml'}: competition 't2': unknown dataset 'fineweb-typo'"),
        ([*validator, "--network", devnet, "--schedule-file", str(tmp / "missing.toml")], EXIT_USAGE,
         f"--schedule-file {tmp / 'missing.toml'}: cannot read"),
        ([*validator, "--netuid", "9", "--competition", "tiny"], EXIT_USAGE, "only on a devnet"),
        ([*validator, "--network", devnet, "--scoring-mode", "gpu"], EXIT_USAGE, "--scoring-mode must be"),
        ([*validator, "--network", devnet, "--max-models-per-round", "0"], EXIT_USAGE, "--max-models-per-round"),
        ([*validator, "--network", devnet, "--log-level", "LOUD"], EXIT_USAGE, "--log-level"),
        ([*validator, "--network", devnet, "--wallet.name", "nobody", "--wallet.path", str(tmp / "w")], EXIT_DOMAIN,
         "hotkey file"),
        (["miner", "train", "--steps", "x"], EXIT_USAGE, "--steps"),
        (["miner", "upload", str(tmp / "model")], EXIT_USAGE, "--namespace"),
        (["miner", "benchmark", str(tmp / "nope")], EXIT_USAGE, "nope"),
        (["model", "check", str(tmp / "nope")], EXIT_USAGE, "nope"),
        ([*model, "--competition", "nope"], EXIT_USAGE, "--competition: unknown competition 'nope'"),
        ([*model, "--competition", "tiny", "--device", "tpu"], EXIT_USAGE, "--device"),
        ([*model, "--competitions-file", str(tmp / "bad.toml")], EXIT_USAGE, "--competitions-file"),
        ([*model, "--competition", "tiny"], EXIT_DOMAIN, "rejected"),
        (["devnet", "--miners", "0"], EXIT_USAGE, "--miners"),
        (["devnet", "--dir", str(tmp / "afile")], EXIT_DOMAIN, "is a file"),
        (["devnet", "--keep", "--api-port", str(port), "--dir", str(tmp / "net")], EXIT_DOMAIN, str(port)),
        (["competitions", "--schedule", str(tmp / "bad.toml")], EXIT_USAGE, "--schedule"),
        (["scores", "--port", "x"], EXIT_USAGE, "--port"),
        (["scores"], EXIT_USAGE, "exactly one of --state DIR or --url URL"),
        (["scores", "--serve", "--url", "http://127.0.0.1:1"], EXIT_USAGE, "--serve needs --state"),
        (["scores", "--url", "http://127.0.0.1:1", "--plot", str(tmp / "p.png")], EXIT_USAGE, "--plot needs --state"),
        (["scores", "--state", str(tmp / "no-state")], EXIT_DOMAIN, "no-state"),
    ]


def test_every_faulty_invocation_is_one_error_line_and_its_code(world, capsys, monkeypatch):
    for name in [k for k in os.environ if k.startswith(("SUBNET_", "BT_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "40")  # a narrow terminal must not wrap an error
    tmp, port = world
    wrong = []
    for args, code, fragment in cases(tmp, port):
        rc = run_command(app, args)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        if rc != code or len(lines) != 1 or not lines[0].startswith("error: ") or fragment not in lines[0]:
            wrong.append((args, rc, err))
    assert not wrong, "\n".join(f"{a}: rc {rc}: {err!r}" for a, rc, err in wrong)
    assert not (tmp / "state").exists()  # no faulty validator invocation left a state behind
    assert not (tmp / "net").exists()


def test_the_real_command_keeps_the_contract():
    proc = subprocess.run([sys.executable, "-m", "subnet", "validator", "run", "--network", "nope"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "30"})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: --network")


def test_the_exit_codes_are_documented_in_help(capsys):
    assert run_command(app, ["-h"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Exit codes: 0 success; 1 a domain error" in out and "2 a usage error" in out and "130" in out
