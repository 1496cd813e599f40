"""A round survives stops, kills and locks: finished scoring is kept and the same round is resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from subnet.validator import state as st
from subnet.validator.round import RoundAborted, run_round
from subnet.validator.state import StateBusy, ValidatorState
from tests.test_validator_e2e import _config, _deps, _populate, subnet, trained  # noqa: F401 - fixtures
from tests.test_validator_health_and_locks import LockHolder
from tests.validator_fixtures import query_state as _query

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


class CountingScorer:
    """The real in-process scorer, counting calls per model; `after` runs after each model is scored."""

    def __init__(self, inner, after=None) -> None:
        self.inner, self.after, self.calls = inner, after, []

    def __call__(self, jobs, competition, docs):
        out = self.inner(jobs, competition, docs)
        self.calls += [j.key for j in jobs]
        if self.after:
            self.after(self)
        return out


def test_stop_mid_round_keeps_scored_models_and_the_next_run_finishes_the_same_round(tmp_path, subnet, trained):
    _populate(subnet, trained, hostile=False)
    deps = _deps(_config(tmp_path, subnet), subnet)
    scorer = CountingScorer(deps.scorer, after=lambda s: deps.stop.set() if len(s.calls) == 2 else None)
    deps.scorer = scorer
    with pytest.raises(RoundAborted):
        run_round(deps)
    [stopped] = deps.state.rounds()
    assert stopped.status == st.ROUND_INTERRUPTED and stopped.seed
    assert set(deps.state.scored_models(stopped.id, "tiny")) == set(scorer.calls) and len(scorer.calls) == 2
    data_before = deps.state.round_data(stopped.id)[0]

    deps.stop.clear()
    subnet.chain.advance(30)  # the chain moved on (a new seed window): the round keeps its own seed
    summary = run_round(deps)
    assert summary.resumed and summary.round_id == stopped.id and summary.seed == stopped.seed
    assert summary.block == stopped.block
    assert sorted(scorer.calls) == sorted(set(scorer.calls)) and len(scorer.calls) == 4  # nothing scored twice
    assert deps.state.round_data(stopped.id)[0]["digest"] == data_before["digest"]
    results = deps.state.results(stopped.id)
    assert len(results) == 4 and all(r.losses is not None for r in results)
    assert deps.state.round(stopped.id).status in (st.ROUND_WEIGHTS_SET, st.ROUND_DONE)
    assert deps.state.scored_models(stopped.id, "tiny") == {}  # progress rows went into the results
    deps.state.close()


def test_a_locked_state_never_throws_away_finished_scoring(tmp_path, subnet, trained):
    _populate(subnet, trained, hostile=False)
    deps = _deps(_config(tmp_path, subnet), subnet)
    deps.state.lock_wait_s = 1.0
    holders = []
    # Another process takes the write lock as the last model finishes scoring, and keeps it.
    deps.scorer = CountingScorer(deps.scorer, after=lambda s: holders.append(LockHolder(deps.state.path))
                                 if len(s.calls) == 4 else None)
    try:
        with pytest.raises(StateBusy):
            run_round(deps)
    finally:
        for h in holders:
            h.release()
    assert len(deps.scorer.calls) == 4
    summary = run_round(deps)  # the lock is gone: the same round is finished from what was scored
    assert summary.resumed and len(deps.scorer.calls) == 4
    assert len(deps.state.results(summary.round_id)) == 4 and summary.competitions["tiny"].scored == 4
    assert deps.state.round(summary.round_id).status in (st.ROUND_WEIGHTS_SET, st.ROUND_DONE)
    deps.state.close()


RUNNER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from subnet.validator.daemon import run_validator
    from tests.test_validator_e2e import _config, _deps
    from tests.validator_fixtures import LocalSubnet

    root, max_rounds = Path(sys.argv[1]), (int(sys.argv[2]) if sys.argv[2] != "forever" else None)
    subnet = LocalSubnet(root / "subnet", block_time=0.2)
    config = _config(root, subnet, max_rounds=max_rounds, timeout_per_model_s=20.0, api_port=0)
    deps = _deps(config, subnet)
    inner = deps.scorer

    def slow(jobs, competition, docs):  # a model takes a while, as on mainnet
        time.sleep(1.5)
        return inner(jobs, competition, docs)

    deps.scorer = slow
    sys.exit(run_validator(config, deps=deps))
""")


def test_sigterm_mid_round_exits_within_the_bound_and_the_restart_finishes_that_round(tmp_path, subnet, trained):
    _populate(subnet, trained, hostile=False)
    db = tmp_path / "state" / "state.sqlite"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-c", RUNNER, str(tmp_path)]
    bound = _config(tmp_path, subnet, timeout_per_model_s=20.0).stop_time_bound_s
    proc = subprocess.Popen(argv + ["forever"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not _query(db, "SELECT 1 FROM round_progress WHERE scored_at IS NOT NULL"):
            assert proc.poll() is None and time.monotonic() < deadline, "no model was scored"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        _, stderr = proc.communicate(timeout=bound + 30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    assert took <= bound, took
    state = ValidatorState(db)
    [stopped] = state.rounds()
    kept = state.scored_models(stopped.id, "tiny")
    assert stopped.status == st.ROUND_INTERRUPTED and 1 <= len(kept) < 4
    state.close()

    proc = subprocess.run(argv + ["1"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    state = ValidatorState(db)
    [finished] = state.rounds()
    assert finished.id == stopped.id and finished.seed == stopped.seed
    assert finished.status in (st.ROUND_WEIGHTS_SET, st.ROUND_DONE)
    results = {r.hotkey: r for r in state.results(finished.id)}
    assert len(results) == 4
    for hotkey, before in kept.items():  # scored once, before the stop: the very same measurement
        assert results[hotkey].seconds == before.seconds and results[hotkey].losses == before.losses
    state.close()


def test_rounds_that_evaluate_nothing_turn_health_red_and_every_failure_is_counted(tmp_path, subnet, trained):
    """Our own disk is full: no model can be fetched. That is no verdict on the miners, and no health."""
    from subnet.validator.daemon import Daemon

    _populate(subnet, trained, hostile=False)
    deps = _deps(_config(tmp_path, subnet, max_rounds=2, min_free_disk_bytes=1 << 62), subnet)
    assert Daemon(deps, on_round=lambda s: None).run() == 0
    rounds = deps.state.rounds()
    assert [(r.n_due, r.n_evaluated) for r in rounds] == [(4, 0), (4, 0)]
    models = deps.state.models()
    assert models and all(m.status == st.MODEL_RETRY for m in models)  # transient: never the miner's fault
    text = deps.metrics.render().decode()
    for reason in {m.reason for m in models}:
        assert f'validator_model_failures_total{{reason="{reason}"}} {2.0 * len(models)}' in text, text
    assert 'validator_health_failing{reason="nothing_evaluated"} 1.0' in text
    deps.state.close()
