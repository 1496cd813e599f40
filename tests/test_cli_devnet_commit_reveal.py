"""`subnet devnet --commit-reveal`: the validator's weights are committed on the local chain and
revealed by it later; the state records each commit's reveal round, and only revealed weights
count as weights on chain."""

from __future__ import annotations

import json

from tests.test_cli_devnet import run_subnet


def test_devnet_commits_weights_and_the_local_chain_reveals_them(tmp_path):
    from subnet.chain.keys import create_wallet
    from subnet.chain.local import LocalChain
    from subnet.validator.state import ValidatorState

    directory = tmp_path / "net"
    proc = run_subnet("devnet", "--commit-reveal", "--miners", "1", "--base-steps", "4", "--rounds", "2",
                      "--api-port", "0", "--dir", str(directory), "--json")
    assert proc.returncode == 0, f"devnet failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["weights_set"] is True  # revealed: applied by the chain
    state = ValidatorState(directory / "validator" / "state.sqlite")
    try:
        commits = [a for a in state.weight_attempts() if a.committed]
    finally:
        state.close()
    assert commits and all(a.reveal_round > a.block for a in commits)
    validator = create_wallet(directory / "wallets", "validator").hotkey.ss58_address
    with LocalChain(directory / "chain.sqlite", netuid=1) as chain:
        assert chain.commit_reveal
        revealed = [h for h in chain.weight_history() if h.validator == validator]
    # Each revealed setting was applied at the reveal block of one of the validator's commits.
    assert revealed and {h.block for h in revealed} <= {a.reveal_round for a in commits}
