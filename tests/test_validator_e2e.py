"""The validator end to end on CPU: a local chain, a local store, the synthetic corpus, tiny models.

Three miners of clearly different quality, a copy-cat that re-uploads the best model under its
own hotkey later, and a hostile repo with a pickle. After a few rounds the best model must hold
the most weight, the copy-cat and the hostile repo none (with recorded reasons), and weights must
be on the local chain. Fault tests wrap the real adapters so that some calls fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest


from subnet.chain.base import ChainError  # noqa: E402
from subnet.hub.store import StoreError  # noqa: E402
from subnet.validator import state as st  # noqa: E402
from subnet.validator.config import ValidatorConfig  # noqa: E402
from subnet.validator.daemon import Daemon, source_factory  # noqa: E402
from subnet.validator.metrics import ValidatorMetrics  # noqa: E402
from subnet.validator.round import RoundDeps, inprocess_scorer  # noqa: E402
from subnet.validator.score_table import scores_table  # noqa: E402
from subnet.validator.state import ValidatorState  # noqa: E402
from tests.validator_fixtures import (  # noqa: E402
    COMPETITIONS,
    LocalSubnet,
    competitions_file,
    query_state as _query,
    train_snapshots,
)

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
WINDOW, MARGIN = 10, 2


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    return train_snapshots(tmp_path_factory.mktemp("validator-models"))


def _config(root: Path, subnet: LocalSubnet, **kw) -> ValidatorConfig:
    base = dict(
        network=subnet.network, netuid=subnet.netuid, state_dir=root / "state", store=f"local:{subnet.store.root}",
        competitions=("tiny",), api_port=0, round_interval_s=0.0, max_rounds=3, scoring_mode="inprocess",
        seed_window_blocks=WINDOW, eligibility_margin_blocks=MARGIN, weights_interval_blocks=2,
        min_free_disk_bytes=0, max_chain_backoff_s=0.2, device="cpu",
    )
    base.update(kw)
    return ValidatorConfig(**base)


def _deps(config: ValidatorConfig, subnet: LocalSubnet, *, chain=None, store=None, source_for=None) -> RoundDeps:
    from subnet.chain.local import LocalChain

    chain = chain or LocalChain(subnet.chain_path, subnet.netuid, wallet=subnet.validator_wallet,
                                block_time=subnet.block_time)
    return RoundDeps(
        chain=chain, store=store or subnet.store, state=ValidatorState(config.db_path), config=config,
        competitions=COMPETITIONS, known_competitions=COMPETITIONS,
        source_for=source_for or source_factory(config), scorer=inprocess_scorer("cpu"), metrics=ValidatorMetrics(),
    )


def _populate(subnet: LocalSubnet, trained: dict[str, Path], *, hostile: bool = True) -> None:
    for label in ("weak", "mid", "strong"):
        subnet.publish(label, trained[label])
        subnet.chain.advance(3)
    subnet.publish("copycat", trained["strong"])  # the best model's bytes, under another hotkey, later
    if hostile:
        subnet.chain.advance(3)
        subnet.publish_hostile("hostile", trained["mid"])
    last = max(m.block for m in subnet.miners.values())
    subnet.advance_to(last + WINDOW + MARGIN)


@pytest.fixture
def subnet(tmp_path):
    s = LocalSubnet(tmp_path / "subnet", block_time=0.2)
    yield s
    s.close()


def test_best_model_wins_copies_and_hostile_repos_get_nothing(tmp_path, subnet, trained):
    _populate(subnet, trained)
    config = _config(tmp_path, subnet, max_rounds=3)
    deps = _deps(config, subnet)
    assert Daemon(deps, on_round=lambda s: None).run() == 0
    state = deps.state
    hk = {label: m.hotkey for label, m in subnet.miners.items()}

    ema = state.ema("tiny")
    assert max(ema, key=ema.get) == hk["strong"], ema
    assert ema.get(hk["copycat"], 0.0) == 0.0 and ema.get(hk["hostile"], 0.0) == 0.0

    rows = {r["hotkey"]: r for r in scores_table(state, "tiny", competitions=COMPETITIONS)}
    # Named by the uid an operator sees in every table, not by a 48-character hotkey (issue 29).
    strong_uid = rows[hk["strong"]]["uid"]
    assert rows[hk["copycat"]]["status"] == "copy"
    assert rows[hk["copycat"]]["reason"] == f"copy of uid {strong_uid} ({hk['strong'][:8]})"
    assert rows[hk["hostile"]]["status"] == "failed" and rows[hk["hostile"]]["reason"] == "forbidden_files"
    assert rows[hk["strong"]]["mean_loss"] < rows[hk["mid"]]["mean_loss"] < rows[hk["weak"]]["mean_loss"]
    assert rows[hk["strong"]]["ci_low"] <= rows[hk["strong"]]["mean_loss"] <= rows[hk["strong"]]["ci_high"]

    rounds = state.rounds()
    assert len(rounds) == 3 and all(r.status in (st.ROUND_WEIGHTS_SET, st.ROUND_DONE) for r in rounds)
    successes = [a for a in state.weight_attempts() if a.status == st.ATTEMPT_SUCCESS]
    assert successes, state.weight_attempts()
    last = successes[-1]
    strong_uid = subnet.miners["strong"].uid
    got = dict(zip(last.uids, last.weights))
    assert max(got, key=got.get) == strong_uid
    assert subnet.miners["copycat"].uid not in got and subnet.miners["hostile"].uid not in got
    # The chain itself holds the validator's weights.
    on_chain = subnet.chain.weights_of(subnet.validator_wallet.hotkey.ss58_address)
    assert max(on_chain, key=on_chain.get) == strong_uid
    # Every round scored the same documents for every model, and recorded them.
    data = state.round_data(rounds[-1].id)[0]
    assert data["n_docs"] > 10 and data["page_ids"] and data["digest"]
    deps.state.close()


class FlakyStore:
    """The real LocalStore, but the first `failures` downloads fail as a Hub outage would."""

    def __init__(self, inner, failures: int) -> None:
        self.inner, self.failures = inner, failures

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def list_files(self, *a, **kw):
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("503 Service Unavailable", transient=True)
        return self.inner.list_files(*a, **kw)


class FlakyChain:
    """The real LocalChain; chosen calls raise ChainError a number of times."""

    def __init__(self, inner, failures: dict[str, int]) -> None:
        self.inner, self.failures = inner, dict(failures)
        self.netuid = inner.netuid

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if name not in self.failures:
            return attr

        def call(*a, **kw):
            if self.failures[name] > 0:
                self.failures[name] -= 1
                raise ChainError(f"{name}: connection dropped", code="connection")
            return attr(*a, **kw)

        return call


class FailingSource:
    """A data source that fails its first `failures` rounds, then behaves."""

    def __init__(self, inner, failures: int) -> None:
        self.inner, self.failures = inner, failures

    def fetch_round(self, *a, **kw):
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("datasets-server answered 503 five times")
        return self.inner.fetch_round(*a, **kw)


def test_daemon_survives_store_chain_and_data_faults(tmp_path, subnet, trained):
    _populate(subnet, trained, hostile=False)
    config = _config(tmp_path, subnet, max_rounds=6)
    base = _deps(config, subnet)
    sources = source_factory(config)
    flaky_source = {}

    def source_for(competition):
        return flaky_source.setdefault(competition.id, FailingSource(sources(competition), failures=1))

    chain = FlakyChain(base.chain, {"metagraph": 1, "set_weights": 1})
    store = FlakyStore(subnet.store, failures=2)
    deps = _deps(config, subnet, chain=chain, store=store, source_for=source_for)
    base.state.close()
    daemon = Daemon(deps, on_round=lambda s: None)
    assert daemon.run() == 0
    state = deps.state
    assert daemon.stats.rounds == 6 and daemon.stats.failed >= 2 and daemon.stats.completed >= 2
    # Why each failure happened is on record.
    failed_rounds = [r for r in state.rounds(100) if r.status == st.ROUND_FAILED]
    assert any("datasets-server" in (r.error or "") for r in failed_rounds)
    assert state.get_meta("error_count") >= 2 and state.get_meta("last_error")["message"]
    attempts = state.weight_attempts()
    assert any(a.status == st.ATTEMPT_FAILED and "connection" in (a.message or "") for a in attempts)
    assert any(a.status == st.ATTEMPT_SUCCESS for a in attempts)
    # The transient store outage was retried: every honest model ended verified.
    by_label = {m.label: m.hotkey for m in subnet.miners.values()}
    models = {m.hotkey: m for m in state.models()}
    assert all(models[by_label[label]].status == st.MODEL_VERIFIED for label in ("weak", "mid", "strong"))
    assert max(state.ema("tiny"), key=state.ema("tiny").get) == by_label["strong"]
    text = deps.metrics.render().decode()
    assert 'validator_model_failures_total{reason="store_unavailable"}' in text
    state.close()


def test_stop_request_ends_the_loop_cleanly(tmp_path, subnet, trained):
    _populate(subnet, trained, hostile=False)
    config = _config(tmp_path, subnet, max_rounds=None, round_interval_s=30.0)
    deps = _deps(config, subnet)
    daemon = Daemon(deps, on_round=lambda s: deps.stop.set())
    thread = threading.Thread(target=daemon.run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    assert [r.status for r in deps.state.rounds()] in ([st.ROUND_WEIGHTS_SET], [st.ROUND_DONE])
    deps.state.close()


def _wait(predicate, timeout_s: float, what: str, proc=None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"validator exited with {proc.returncode} while waiting for {what}")
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_during_scoring_then_restart_keeps_state_and_never_resends(tmp_path, subnet, trained):
    _populate(subnet, trained)
    state_dir = tmp_path / "state"
    db = state_dir / "state.sqlite"
    comps = competitions_file(tmp_path / "competitions.json")
    argv = [
        sys.executable, str(REPO / "neurons" / "validator.py"),
        "--network", subnet.network, "--netuid", str(subnet.netuid),
        "--wallet.name", "validator", "--wallet.hotkey", "default", "--wallet.path", str(subnet.wallet_path),
        "--device", "cpu", "--state-dir", str(state_dir), "--store", f"local:{subnet.store.root}",
        "--competitions-file", str(comps), "--competition", "tiny", "--api-port", "0",
        "--round-interval-s", "0", "--scoring-mode", "inprocess", "--min-free-disk-gb", "0",
        "--seed-window-blocks", str(WINDOW), "--eligibility-margin-blocks", str(MARGIN),
        "--weights-interval-blocks", "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # Let one round finish, then kill -9 while the next one is scoring (its documents are recorded).
        _wait(lambda: _query(db, "SELECT 1 FROM rounds WHERE status IN ('weights_set', 'done')"), 90, "round 1", proc)
        _wait(lambda: _query(db, "SELECT 1 FROM rounds r JOIN round_data d ON d.round_id = r.id"
                                 " WHERE r.status = 'started'"), 60, "scoring of round 2", proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    before = ValidatorState(db)
    ema_before = before.ema("tiny")
    verified_before = {m.hotkey: m.model_dir for m in before.models(st.MODEL_VERIFIED)}
    sent_before = [a.round_id for a in before.weight_attempts() if a.status in (st.ATTEMPT_SUCCESS, st.ATTEMPT_INTENT)]
    killed_round = [r.id for r in before.rounds() if r.status == st.ROUND_STARTED]
    killed_seed = before.round(killed_round[0]).seed if killed_round else None
    before.close()
    assert ema_before and len(verified_before) == 4 and killed_round

    mtimes = {hk: Path(d).stat().st_mtime for hk, d in verified_before.items()}
    # Restart; once a new round is complete, SIGTERM must stop it cleanly (exit 0, nothing left half-done).
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait(lambda: _query(db, f"SELECT 1 FROM rounds WHERE id > {killed_round[0]}"
                                 " AND status IN ('weights_set', 'done')"), 90, "a round after the restart", proc)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, stderr.decode()[-3000:]

    after = ValidatorState(db)
    statuses = {r.id: r.status for r in after.rounds()}
    # The killed round was resumed, not discarded: same round, same seed, every planned model judged.
    assert statuses[killed_round[0]] in (st.ROUND_WEIGHTS_SET, st.ROUND_DONE)
    assert after.round(killed_round[0]).seed == killed_seed
    assert {r.hotkey for r in after.results(killed_round[0])} == set(verified_before)
    # The models verified before the kill were reused, not downloaded again.
    for hk, d in verified_before.items():
        assert Path(d).stat().st_mtime == mtimes[hk]
    assert {m.hotkey for m in after.models(st.MODEL_VERIFIED)} == set(verified_before)
    # The EMA carried over: the new round blended into it rather than starting again.
    assert set(after.ema("tiny")) >= {k for k, v in ema_before.items() if v > 0.01}
    # At most one success per round, and no round sent twice.
    per_round: dict[int, int] = {}
    for a in after.weight_attempts():
        if a.status in (st.ATTEMPT_SUCCESS, st.ATTEMPT_UNKNOWN):
            per_round[a.round_id] = per_round.get(a.round_id, 0) + 1
    assert per_round and all(n == 1 for n in per_round.values())
    assert set(sent_before) <= set(per_round)
    assert st.ROUND_STARTED not in statuses.values()  # the SIGTERM left no round half-done
    after.close()


def test_worker_processes_score_models_in_isolation(tmp_path, subnet, trained):
    """The production scorer: one spawned process per model (slower to start, so two models only)."""
    from subnet.validator.round import worker_scorer

    subnet.publish("weak", trained["weak"])
    subnet.chain.advance(3)
    subnet.publish("strong", trained["strong"])
    subnet.advance_to(subnet.miners["strong"].block + WINDOW + MARGIN)
    config = _config(tmp_path, subnet, max_rounds=1, scoring_mode="worker", timeout_per_model_s=120)
    deps = _deps(config, subnet)
    deps.scorer = worker_scorer("cpu", config.timeout_per_model_s)
    summaries = []
    assert Daemon(deps, on_round=summaries.append).run() == 0
    [summary] = summaries
    outcome = summary.competitions["tiny"]
    assert outcome.scored == 2 and outcome.tokens_per_s > 0 and not outcome.failed
    strong = subnet.miners["strong"].hotkey
    assert max(outcome.ema, key=outcome.ema.get) == strong
    assert outcome.mean_loss[strong] < outcome.mean_loss[subnet.miners["weak"].hotkey]
    deps.state.close()


def test_restart_sets_weights_of_a_round_scored_before_the_stop(tmp_path, subnet):
    """Killed between scoring and set_weights: on restart the stored EMA is sent, once."""
    a, b = subnet.add_miner("a"), subnet.add_miner("b")
    config = _config(tmp_path, subnet, max_rounds=0)
    deps = _deps(config, subnet)
    rid = deps.state.start_round(subnet.chain.current_block())
    deps.state.complete_scoring(rid, [], [], {"tiny": {a.hotkey: 0.75, b.hotkey: 0.25, "deregistered": 0.5}})
    assert Daemon(deps, on_round=lambda s: None).run() == 0
    assert deps.state.round(rid).status == st.ROUND_WEIGHTS_SET
    on_chain = subnet.chain.weights_of(subnet.validator_wallet.hotkey.ss58_address)
    assert on_chain == pytest.approx({a.uid: 0.75, b.uid: 0.25})
    # A second restart finds nothing to resend.
    assert Daemon(deps, on_round=lambda s: None).run() == 0
    assert [x.status for x in deps.state.weight_attempts(rid)] == [st.ATTEMPT_SUCCESS]
    deps.state.close()
