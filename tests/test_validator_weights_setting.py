"""Step 7 on the local chain: weights are due by the *current* block (not the round's start block,
which lags by a round's length), a locked chain database is a recorded chain failure with a code
(never a dangling intent), and a commit-reveal chain's commit is recorded with its reveal round."""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace

import pytest

import subnet.chain.local as local
from subnet.chain.local import LocalChain
from subnet.competitions import DEFAULT_COMPETITIONS
from subnet.validator import state as st
from subnet.validator.config import ValidatorConfig
from subnet.validator.round import RoundDeps
from subnet.validator.state import ValidatorState
from subnet.validator.weights_setting import set_weights

TINY = {"tiny": DEFAULT_COMPETITIONS["tiny"]}


def fake_wallet(hotkey: str) -> SimpleNamespace:
    return SimpleNamespace(hotkey=SimpleNamespace(ss58_address=hotkey))


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "_BUSY_TIMEOUT_S", 0.2)  # a locked database answers at once
    path = tmp_path / "chain.sqlite"
    admin = LocalChain(path, block_time=1000.0)
    admin.advance(100)
    admin.set_weights_rate_limit(1)
    admin.register("5V", validator_permit=True)
    admin.register("5M")
    config = ValidatorConfig(network=f"devnet:{path}", state_dir=tmp_path / "state", store=f"local:{tmp_path}",
                             competitions=("tiny",), api_port=0, weights_interval_blocks=10, weights_retries=2,
                             min_free_disk_bytes=0)
    state = ValidatorState(config.db_path)
    chain = LocalChain(path, wallet=fake_wallet("5V"))
    deps = RoundDeps(chain=chain, store=None, state=state, config=config, competitions=TINY,
                     known_competitions=TINY, source_for=None, scorer=None)
    yield SimpleNamespace(admin=admin, chain=chain, state=state, deps=deps, path=path)
    chain.close()
    admin.close()
    state.close()


def _round(state: ValidatorState, block: int) -> int:
    rid = state.start_round(block, "0xseed")
    state.complete_scoring(rid, [], [], {}, [])
    return rid


def test_weights_are_due_by_the_current_block_not_the_rounds_start(world):
    first = _round(world.state, 100)
    assert set_weights(world.deps, first, [1], [1.0], 100) == st.ROUND_WEIGHTS_SET
    set_at = world.state.last_weights_success_block()
    # The next round started 6 blocks later and scored for 6 more: 12 blocks have passed since.
    world.admin.advance(12)
    second = _round(world.state, set_at + 6)
    assert set_weights(world.deps, second, [1], [1.0], set_at + 6) == st.ROUND_WEIGHTS_SET
    assert len(world.admin.weight_history()) == 2
    # Not due when the chain itself says too little time has passed.
    third = _round(world.state, set_at + 14)
    assert set_weights(world.deps, third, [1], [1.0], set_at + 14) == st.ROUND_DONE
    assert world.state.weight_attempts(third) == []


def test_a_locked_chain_database_is_a_failed_attempt_with_a_code(world):
    rid = _round(world.state, 100)
    blocker = sqlite3.connect(str(world.path), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        status = set_weights(world.deps, rid, [1], [1.0], 100)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert status == st.ROUND_DONE
    attempts = world.state.weight_attempts(rid)
    assert attempts and all((a.status, a.code) == (st.ATTEMPT_FAILED, "unavailable") for a in attempts)
    assert len(attempts) == world.deps.config.weights_retries  # a locked database is retried, within bounds
    assert not world.state.weights_sent(rid)  # no dangling intent
    assert world.deps.metrics.chain_errors._value.get() == len(attempts)


def test_a_commit_is_recorded_with_its_reveal_round(world):
    world.admin.set_commit_reveal(True, reveal_period=5)
    rid = _round(world.state, 100)
    assert set_weights(world.deps, rid, [1], [1.0], 100) == st.ROUND_WEIGHTS_SET
    [attempt] = world.state.weight_attempts(rid)
    assert attempt.committed and attempt.reveal_round == attempt.block + 5
    from subnet.validator.score_table import weights_summary

    assert weights_summary(world.state)["text"] == f"committed, reveals at round {attempt.reveal_round}"
    assert world.admin.weight_history() == []  # not applied yet


def test_status_api_and_scores_cli_say_committed_with_the_reveal_round(world):
    import json
    import urllib.request

    from typer.testing import CliRunner

    from subnet.commands.main import app
    from subnet.validator.api import StatusServer, build_app
    from subnet.validator.metrics import ValidatorMetrics

    world.admin.set_commit_reveal(True, reveal_period=5)
    rid = _round(world.state, 100)
    set_weights(world.deps, rid, [1], [1.0], 100)
    [attempt] = world.state.weight_attempts(rid)
    expected = f"committed, reveals at round {attempt.reveal_round}"
    server = StatusServer(build_app(world.state, ValidatorMetrics()), "127.0.0.1", 0)
    port = server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/scores", timeout=10) as response:
            payload = json.loads(response.read())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/rounds", timeout=10) as response:
            rounds = json.loads(response.read())["rounds"]
        via_api = CliRunner().invoke(app, ["scores", "--url", f"http://127.0.0.1:{port}"])
    finally:
        server.stop()
    assert payload["weights"]["status"] == "committed" and payload["weights"]["text"] == expected
    [sent] = next(r for r in rounds if r["id"] == rid)["weights"]
    assert sent["reveal_round"] == attempt.reveal_round
    via_state = CliRunner().invoke(app, ["scores", "--state", str(world.state.path)])
    for result in (via_api, via_state):
        assert result.exit_code == 0, result.output
        assert f"weights: {expected}" in " ".join(result.output.split())
