"""`--network devnet:PATH` names an existing devnet chain: a typo is refused in one line naming the path
and how to make a devnet, and never creates an empty chain (issue 29)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from subnet.chain.factory import make_chain, network_problem
from subnet.chain.local import LocalChain

ENV = {**{k: v for k, v in os.environ.items() if not k.startswith(("SUBNET_", "BT_"))}, "COLUMNS": "60"}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "subnet", *args], capture_output=True, text=True, timeout=120, env=ENV)


@pytest.mark.parametrize("command", [
    ["validator", "run", "--api-port", "0"],
    ["miner", "benchmark", ".", "--incumbent", "chain"],
])
def test_a_missing_devnet_chain_is_refused_and_not_created(tmp_path, command):
    typo = tmp_path / "devnte" / "chain.sqlite"
    proc = run(*command, "--network", f"devnet:{typo}", "--state-dir" if command[0] == "validator" else "--device",
               str(tmp_path / "state") if command[0] == "validator" else "cpu")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "error:" in lines[0], proc.stderr
    assert str(typo) in lines[0] and "does not exist" in lines[0] and "subnet devnet" in lines[0]
    assert not typo.exists() and not typo.parent.exists()
    assert not (tmp_path / "state").exists()


def test_the_factory_never_creates_a_chain_but_opens_an_existing_one(tmp_path):
    path = tmp_path / "chain.sqlite"
    with pytest.raises(ValueError, match="does not exist"):
        make_chain(f"devnet:{path}", 1)
    assert not path.exists()
    assert "is a directory" in network_problem(f"devnet:{tmp_path}")
    LocalChain(path, netuid=1).close()  # `subnet devnet` creates chains through LocalChain itself
    assert network_problem(f"devnet:{path}") == ""
    chain = make_chain(f"devnet:{path}", 1)
    assert isinstance(chain, LocalChain)
    chain.close()
