"""A fault of ours never moves weight (issue 30): real rounds on a local chain, store and model cache.

The model cache sits on a simulated disk of a fixed capacity (free = capacity - bytes under the
cache), the one measure every free-disk decision uses, so "the disk is nearly full" and "the disk
was grown" are exact and do not depend on what else runs on this machine.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from subnet.validator import state as st
from subnet.validator.round import run_round
from tests.test_validator_e2e import WINDOW, _config, _deps, _populate, subnet, trained  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


class SimulatedDisk:
    """The cache's disk: `capacity` bytes, of which the files under `root` use some."""

    def __init__(self, root: Path, capacity: int) -> None:
        self.root, self.capacity = root, capacity

    def used(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file()) if self.root.exists() else 0

    def free(self, path=None) -> int:
        return max(0, self.capacity - self.used())


@pytest.fixture
def disk(tmp_path, monkeypatch):
    from subnet.hub import cache

    d = SimulatedDisk(tmp_path / "state" / "models", 1 << 40)
    monkeypatch.setattr(cache, "disk_free", d.free)
    return d


def _weights_on_chain(subnet) -> dict[int, float]:
    return subnet.chain.weights_of(subnet.validator_wallet.hotkey.ss58_address)


def _next(subnet) -> None:
    # Past the weights rate limit, into the next seed window (a model is scored once per window).
    subnet.chain.advance(WINDOW)


def _record(deps, hotkey):
    return next(m for m in deps.state.models() if m.hotkey == hotkey)


def test_a_full_disk_keeps_the_best_models_weight_and_scores_it_once_space_is_freed(tmp_path, subnet, trained, disk):
    _populate(subnet, trained, hostile=False)
    hk = {label: m.hotkey for label, m in subnet.miners.items()}
    deps = _deps(_config(tmp_path, subnet, min_free_disk_bytes=64 * 1024), subnet)
    first = run_round(deps)
    assert first.weights_status == st.ROUND_WEIGHTS_SET
    ema = deps.state.ema("tiny")
    assert max(ema, key=ema.get) == hk["strong"], ema
    chain_before = _weights_on_chain(subnet)
    assert max(chain_before, key=chain_before.get) == subnet.miners["strong"].uid

    # The best model and its copy must be downloaded again, and the disk is nearly full.
    for label in ("strong", "copycat"):
        shutil.rmtree(_record(deps, hk[label]).model_dir)
    disk.capacity = disk.used() + deps.config.min_free_disk_bytes + 150_000
    for _ in range(4):
        _next(subnet)
        summary = run_round(deps)
        outcome = summary.competitions["tiny"]
        assert hk["strong"] not in outcome.failed and hk["strong"] not in outcome.win_rates
        assert outcome.weights_held and hk["strong"] in outcome.weights_held
        assert deps.state.ema("tiny") == ema  # the weaker models inherit nothing
        assert _weights_on_chain(subnet) == chain_before
        results = {r.hotkey: r for r in deps.state.results(summary.round_id)}
        assert hk["strong"] not in results and hk["copycat"] not in results  # no win_rate 0.0, no 'disk_full' row
    strong = _record(deps, hk["strong"])
    assert strong.status == st.MODEL_RETRY and strong.reason == "disk_full" and strong.parked()

    disk.capacity = 64 * 1024**2  # the disk was grown: the parked models are retried at once, not after backoff
    _next(subnet)
    summary = run_round(deps)
    outcome = summary.competitions["tiny"]
    assert hk["strong"] in outcome.mean_loss and not outcome.own_faults and outcome.weights_held is None
    ema_after = deps.state.ema("tiny")
    assert max(ema_after, key=ema_after.get) == hk["strong"]
    assert _record(deps, hk["strong"]).status == st.MODEL_VERIFIED
    deps.state.close()


def test_the_cache_evicts_models_nobody_needs_before_refusing_a_needed_one(tmp_path, subnet, trained, disk):
    _populate(subnet, trained, hostile=False)
    deps = _deps(_config(tmp_path, subnet, min_free_disk_bytes=64 * 1024), subnet)
    stale = deps.config.models_dir / subnet.miners["weak"].hotkey / ("0" * 40)  # an old commit nobody commits to
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"\0" * 3_000_000)
    # Room above the floor for one download of the four (about 0.5 MB each): only eviction makes them fit.
    disk.capacity = disk.used() + deps.config.min_free_disk_bytes + 600_000
    summary = run_round(deps)
    outcome = summary.competitions["tiny"]
    assert not outcome.own_faults and not outcome.failed, outcome
    assert outcome.scored == 4 and not stale.exists()
    deps.state.close()


def test_a_cache_vanishing_mid_round_records_no_model_failure(tmp_path, subnet, trained, disk):
    _populate(subnet, trained, hostile=False)
    hk = {label: m.hotkey for label, m in subnet.miners.items()}
    deps = _deps(_config(tmp_path, subnet), subnet)
    run_round(deps)
    ema = deps.state.ema("tiny")
    scorer = deps.scorer

    def vanishing_cache(jobs, competition, docs):  # the cache disk loses the leader's files while it is scored
        for job in jobs:
            if hk["strong"] in job.model_dir:
                shutil.rmtree(job.model_dir)
        return scorer(jobs, competition, docs)

    deps.scorer = vanishing_cache
    _next(subnet)
    summary = run_round(deps)
    outcome = summary.competitions["tiny"]
    assert outcome.own_faults == {hk["strong"]: "cache_lost"} and hk["strong"] not in outcome.failed
    assert {r.hotkey for r in deps.state.results(summary.round_id)} == {hk["weak"], hk["mid"], hk["copycat"]}
    assert deps.state.ema("tiny") == ema  # the leader could not be judged: nobody's weight moved
    assert _record(deps, hk["strong"]).status == st.MODEL_VERIFIED

    deps.scorer = scorer
    _next(subnet)
    summary = run_round(deps)  # fetched again and scored
    assert hk["strong"] in summary.competitions["tiny"].mean_loss
    deps.state.close()


def test_a_resumed_round_without_a_plan_plans_and_scores_instead_of_setting_weights_from_nothing(
        tmp_path, subnet, trained, monkeypatch):
    _populate(subnet, trained, hostile=False)
    deps = _deps(_config(tmp_path, subnet), subnet)
    record_plan = deps.state.record_plan

    def killed(*a, **kw):  # the process dies after the round was created, before its plan was recorded
        raise KeyboardInterrupt

    monkeypatch.setattr(deps.state, "record_plan", killed)
    with pytest.raises(KeyboardInterrupt):
        run_round(deps)
    [stopped] = deps.state.rounds()
    assert deps.state.planned_models(stopped.id) == {}
    monkeypatch.setattr(deps.state, "record_plan", record_plan)
    summary = run_round(deps)
    assert summary.resumed and summary.round_id == stopped.id
    assert summary.competitions["tiny"].scored == 4 and summary.n_due == 4 and summary.n_evaluated == 4
    assert len(deps.state.results(stopped.id)) == 4
    deps.state.close()


def test_the_daemon_reports_held_weights_and_waiting_models_while_the_disk_is_full(tmp_path, subnet, trained, disk):
    from subnet.validator.api import check_health
    from subnet.validator.daemon import Daemon
    from subnet.validator.health import HealthPolicy

    _populate(subnet, trained, hostile=False)
    hk = {label: m.hotkey for label, m in subnet.miners.items()}
    deps = _deps(_config(tmp_path, subnet, min_free_disk_bytes=64 * 1024), subnet)
    daemon = Daemon(deps, on_round=lambda s: None)
    daemon.run_one()
    reader = deps.state.reader()

    def health():
        return check_health(reader, deps.metrics, HealthPolicy(3600, 2), daemon.started_at)  # what /healthz says

    assert health().ok
    shutil.rmtree(_record(deps, hk["strong"]).model_dir)
    disk.capacity = disk.used() + deps.config.min_free_disk_bytes + 150_000
    _next(subnet)
    daemon.run_one()
    h = health()
    assert not h.ok and h.details["status"] == "degraded"
    assert h.reasons == ["models_parked", "weights_held"] and h.details["models_parked"] == {"disk_full": 1}
    assert hk["strong"] in h.details["weights_held"]["tiny"]
    assert 'validator_weights_held{competition="tiny"} 1.0' in deps.metrics.render().decode()

    disk.capacity = 64 * 1024**2
    _next(subnet)
    daemon.run_one()
    h = health()
    assert h.ok and h.details["status"] == "ok", h
    assert 'validator_weights_held{competition="tiny"} 0.0' in deps.metrics.render().decode()
    reader.close()
    deps.state.close()


def test_a_model_parked_while_the_store_was_down_is_retried_as_soon_as_it_answers(tmp_path, subnet, trained,
                                                                                  monkeypatch):
    from subnet.hub.store import StoreError

    _populate(subnet, trained, hostile=False)
    hk = {label: m.hotkey for label, m in subnet.miners.items()}
    deps = _deps(_config(tmp_path, subnet), subnet)
    run_round(deps)
    ema = deps.state.ema("tiny")
    real_list = subnet.store.list_files
    down = {"on": True}

    def list_files(namespace, name, commit):
        if name in ("strong", "copycat") and down["on"]:
            raise StoreError("503 Service Unavailable", transient=True)
        return real_list(namespace, name, commit)

    monkeypatch.setattr(subnet.store, "list_files", list_files)
    for label in ("strong", "copycat"):  # their copies must be fetched again, from a store that is down
        shutil.rmtree(_record(deps, hk[label]).model_dir)
    for _ in range(4):
        _next(subnet)
        summary = run_round(deps)
        assert summary.competitions["tiny"].own_faults.get(hk["strong"]) == "store_unavailable"
        assert deps.state.ema("tiny") == ema
    assert _record(deps, hk["strong"]).parked()

    down["on"] = False  # the store is back: the probe's listing answers, and the model is not left to its backoff
    _next(subnet)
    summary = run_round(deps)
    assert hk["strong"] in summary.competitions["tiny"].mean_loss, summary.competitions["tiny"]
    assert _record(deps, hk["strong"]).status == st.MODEL_VERIFIED
    deps.state.close()
