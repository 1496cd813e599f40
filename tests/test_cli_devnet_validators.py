"""`subnet devnet --validators 3`, shortened, as a user runs it: every validator's vtrust is printed,
computed by the local chain's epoch from the weights the validators set."""

from __future__ import annotations

import pytest

from tests.test_cli_devnet import last_json_line, run_subnet


@pytest.mark.slow
def test_three_validators_started_at_different_times_agree_and_print_their_vtrust(tmp_path):
    proc = run_subnet("devnet", "--validators", "3", "--miners", "2", "--base-steps", "5", "--rounds", "1",
                      "--api-port", "0", "--dir", str(tmp_path / "net"), "--json", timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = last_json_line(proc.stdout)
    validators = result["validators"]
    assert [v["name"] for v in validators] == ["validator", "validator-1", "validator-2"]
    assert all(v["weights_set"] for v in validators)
    best = {row["uid"] for row in result["scores"] if row["role"] == "trained:20"}
    assert {v["top_uid"] for v in validators} == best  # the same model, from the same windows
    assert all(v["vtrust"] == pytest.approx(1.0, abs=1e-6) for v in validators)
    for v in validators:
        assert v["name"] in proc.stderr and "vtrust" in proc.stderr
    # Validators 1 and 2 started later, the local chain's consensus already set: they said they were catching up.
    assert "catching up" in proc.stderr
