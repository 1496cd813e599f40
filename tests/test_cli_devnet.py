"""`subnet devnet`, end to end, as a user runs it: a real subprocess of the `subnet` command.

A shortened devnet (2 miners training 8 and 32 steps, a copy-cat, 2 validator rounds) must end with
the longest-trained miner holding the weight on the local chain and the copy-cat holding none. The
state it leaves behind must read back identically through `subnet scores`.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_STEPS = 8
MINERS = 2  # miner i trains BASE_STEPS * 4**i steps: 8 and 32


def subnet_command() -> list[str]:
    """The installed `subnet` entry point next to this interpreter, else the module (same code)."""
    script = Path(sys.executable).with_name("subnet")
    return [str(script)] if script.exists() else [sys.executable, "-m", "subnet"]


def run_subnet(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run([*subnet_command(), *args], capture_output=True, text=True, timeout=timeout, env=env)


def last_json_line(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "the command printed nothing on stdout"
    return json.loads(lines[-1])


def same_round_losses(state_dir: Path, a: str, b: str) -> list[tuple[float, float]]:
    """(a's mean loss, b's mean loss) in each round of the validator's state that scored both hotkeys."""
    from subnet.validator.state import ValidatorState

    state = ValidatorState(state_dir / "state.sqlite")
    try:
        out = []
        for r in state.rounds(limit=100):
            rows = {row.hotkey: row.mean_loss for row in state.results(r.id)}
            if rows.get(a) is not None and rows.get(b) is not None:
                out.append((rows[a], rows[b]))
        return out
    finally:
        state.close()


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    directory = tmp_path_factory.mktemp("devnet") / "net"
    proc = run_subnet("devnet", "--miners", str(MINERS), "--base-steps", str(BASE_STEPS), "--rounds", "2",
                      "--api-port", "0", "--dir", str(directory), "--json")
    assert proc.returncode == 0, f"devnet failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print only the JSON object on stdout, got:\n{proc.stdout[-2000:]}"
    return directory, json.loads(lines[0])


def test_devnet_rewards_the_best_miner_and_zeroes_the_copycat(devnet):
    _, result = devnet
    assert result["weights_set"] is True
    assert result["validator_exit"] == 0
    by_role = {row["role"]: row for row in result["scores"]}
    best_steps = BASE_STEPS * 4 ** (MINERS - 1)
    trained = {f"trained:{BASE_STEPS * 4**i}" for i in range(MINERS)}
    assert trained <= set(by_role) and len(result["scores"]) == MINERS + 1  # every miner and the copy-cat

    best = by_role[f"trained:{best_steps}"]
    assert best["status"] == "scored"
    assert best["weight"] > 0
    assert best["weight"] == max(row["weight"] for row in result["scores"])
    # The longer-trained model has the clearly lower loss: its interval lies below every other miner's.
    for steps in (BASE_STEPS * 4**i for i in range(MINERS - 1)):
        weaker = by_role[f"trained:{steps}"]
        assert best["ci_high"] < weaker["ci_low"], (best, weaker)
        assert weaker["weight"] < best["weight"]

    [copycat_role] = [r for r in by_role if r.startswith("copycat:")]
    copycat = by_role[copycat_role]
    assert copycat_role == f"copycat:{best['uid']}"  # it copied the best miner
    assert copycat["status"] == "copy"
    assert copycat["weight"] == 0
    assert copycat["mean_loss"] is not None
    # Same weights, same loss, in every round that scored both: the table's rows may come from different
    # rounds (a later round can backfill an older window for the weight holder alone), so compare per round.
    both = same_round_losses(Path(result["state_dir"]), best["hotkey"], copycat["hotkey"])
    assert both, "no round scored both the best miner and its copy"
    for best_loss, copy_loss in both:
        assert copy_loss == pytest.approx(best_loss)

    for row in result["scores"]:
        if row["status"] in ("scored", "copy"):
            lo, mean, hi = row["ci_low"], row["mean_loss"], row["ci_high"]
            assert all(isinstance(x, float) and math.isfinite(x) for x in (lo, mean, hi)), row
            assert lo <= mean <= hi, row


def test_devnet_weights_are_on_the_local_chain(devnet):
    from subnet.chain.keys import create_wallet
    from subnet.chain.local import LocalChain

    directory, result = devnet
    validator_hotkey = create_wallet(directory / "wallets", "validator").hotkey.ss58_address  # reuses the key
    best = max(result["scores"], key=lambda row: row["weight"])
    copycat = next(row for row in result["scores"] if row["role"].startswith("copycat:"))
    with LocalChain(directory / "chain.sqlite", netuid=1) as chain:
        on_chain = chain.weights_of(validator_hotkey)
        history = chain.weight_history()
    assert history and {setting.validator for setting in history} == {validator_hotkey}
    assert on_chain.get(best["uid"], 0.0) > 0
    assert on_chain.get(best["uid"]) == max(on_chain.values())
    assert on_chain.get(copycat["uid"], 0.0) == 0
    assert sum(on_chain.values()) == pytest.approx(1.0, abs=1e-3)


def test_scores_reads_back_the_devnet_state(devnet):
    directory, result = devnet
    assert Path(result["state_dir"]) == (directory / "validator").resolve()
    proc = run_subnet("scores", "--json", "--state", result["state_dir"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = last_json_line(proc.stdout)["scores"]
    assert {r["hotkey"]: r["weight"] for r in rows} == {r["hotkey"]: r["weight"] for r in result["scores"]}
    assert {r["hotkey"]: r["status"] for r in rows} == {r["hotkey"]: r["status"] for r in result["scores"]}
