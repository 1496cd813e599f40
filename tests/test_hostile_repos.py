"""Every hostile repo of tests/hostile_repos.py, through `subnet model check` and a real validator round.

Done means: the round completes and sets weights, the honest model gets the weight, each hostile
repo's reason is recorded, and `model check` exits 1 with that same reason and no traceback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from subnet.commands.main import app
from subnet.hub.errors import ModelRejected
from subnet.validator import state as st
from subnet.validator.score_table import scores_table
from tests.hostile_repos import CASES, NAN_REASON, HostileCase, build_case, honest_model
from tests.validator_fixtures import LocalSubnet, competitions_file

runner = CliRunner()
FAKE_HASH = "A" * 43 + "="  # for repos refused before any hashing (hashing a FIFO would block)


@pytest.fixture(scope="module")
def honest(tmp_path_factory) -> Path:
    return honest_model(tmp_path_factory.mktemp("honest") / "model")


@pytest.fixture(scope="module")
def comp_file(tmp_path_factory) -> Path:
    return competitions_file(tmp_path_factory.mktemp("comp") / "competitions.json")


def model_check(path: Path, comp_file: Path) -> tuple[int, dict, str]:
    result = runner.invoke(app, ["model", "check", str(path), "--competition", "tiny", "--competitions-file",
                                 str(comp_file), "--documents", "8", "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return result.exit_code, json.loads(lines[-1]), result.output


def reason_matches(case: HostileCase, reason: str | None) -> bool:
    return reason is not None and (NAN_REASON in reason if case.scored else reason == case.reason)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_model_check_rejects_each_hostile_repo_with_its_reason(case, honest, comp_file, tmp_path):
    code, payload, output = model_check(build_case(case, honest, tmp_path), comp_file)
    assert code == 1 and payload["accepted"] is False, payload
    assert reason_matches(case, payload["reason"]), payload
    assert payload["detail"] and payload["detail"] != payload["reason"] or case.scored, payload  # detail kept
    assert "Traceback" not in output


def test_the_honest_model_passes_model_check(honest, comp_file):
    code, payload, _ = model_check(honest, comp_file)
    assert code == 0 and payload["accepted"] is True, payload


def _publish_raw(subnet: LocalSubnet, label: str, revision_of: callable) -> None:
    """A public repo whose revision is written straight into the store, past upload's checks."""
    from subnet.hub.download import check_tree
    from subnet.hub.hashing import directory_hash, secure_hash
    from subnet.hub.model_ref import ModelRef

    miner = subnet.add_miner(label)
    repo = subnet.store.root / "miners" / label
    commit = "ab" * 20
    revision_of(repo / commit)
    (repo / "repo.json").write_text(json.dumps({"private": False}))
    try:
        check_tree(repo / commit)
        digest = secure_hash(directory_hash(repo / commit), miner.hotkey)
    except ModelRejected:
        digest = FAKE_HASH
    ref = ModelRef("miners", label, commit, digest, "tiny").encode()
    chain = subnet._miner_chain(label)
    miner.block = chain.commit(ref)
    chain.close()
    miner.ref = ref


@pytest.mark.slow
def test_a_round_with_every_hostile_repo_sets_weights_for_the_honest_model(honest, comp_file, tmp_path):
    from subnet.validator.daemon import Daemon
    from tests.test_validator_e2e import _config, _deps

    subnet = LocalSubnet(tmp_path / "subnet", block_time=0.2)
    try:
        subnet.publish("honest", honest)
        for case in CASES:
            _publish_raw(subnet, case.name, lambda target, case=case: (
                target.parent.mkdir(parents=True), shutil.copytree(honest, target), case.build(target)))
        subnet.advance_to(max(m.block for m in subnet.miners.values()) + 20)
        config = _config(tmp_path, subnet, max_rounds=1, max_models_per_round=len(CASES) + 5, min_revisits_per_round=0)
        deps = _deps(config, subnet)
        assert Daemon(deps, on_round=lambda s: None).run() == 0
        state = deps.state
        (round_,) = state.rounds()
        assert round_.status == st.ROUND_WEIGHTS_SET, round_
        on_chain = subnet.chain.weights_of(subnet.validator_wallet.hotkey.ss58_address)
        honest_uid = subnet.miners["honest"].uid
        assert max(on_chain, key=on_chain.get) == honest_uid and on_chain[honest_uid] > 0.99, on_chain
        rows = {r["hotkey"]: r for r in scores_table(state, "tiny", competitions={"tiny": deps.competitions["tiny"]})}
        wrong = {}
        for case in CASES:
            row = rows[subnet.miners[case.name].hotkey]
            expected_status = "error" if case.scored else st.MODEL_FAILED
            if row["status"] != expected_status or not reason_matches(case, row["reason"]) or row["weight"] > 0:
                wrong[case.name] = (row["status"], row["reason"], row["weight"])
        assert not wrong, wrong
        state.close()
    finally:
        subnet.close()
