"""`subnet devnet` and its status port (issue 29): a busy port is refused before any work, and a devnet
without --keep serves nothing, so it needs no port at all."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

import subnet.commands.devnet as devnet
from subnet.commands.main import app


@pytest.fixture
def busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_a_busy_port_fails_in_seconds_before_any_directory_or_training(tmp_path, busy_port):
    directory = tmp_path / "net"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "subnet", "devnet", "--keep", "--api-port", str(busy_port),
                           "--dir", str(directory)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "40"})
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(busy_port) in lines[0], proc.stderr
    assert not directory.exists()  # nothing was prepared, nothing trained
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("args, port", [([], 0), (["--keep"], devnet.KEEP_API_PORT), (["--api-port", "9999"], 9999),
                                        (["--keep", "--api-port", "0"], 0)])
def test_the_status_port_is_bound_only_when_asked_for(monkeypatch, tmp_path, args, port):
    plans = []

    def fake_run(plan, console):
        plans.append(plan)
        return {"weights_set": True}

    monkeypatch.setattr(devnet, "run_devnet", fake_run)
    result = CliRunner().invoke(app, ["devnet", "--dir", str(tmp_path / "net"), *args])
    assert result.exit_code == 0, result.output
    assert plans[0].api_port == port
