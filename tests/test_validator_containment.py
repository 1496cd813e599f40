"""No exception raised while fetching or checking one model can fail a round (issue 13), and the
validator's own store, disk and cache faults never fail a miner for good (issue 14, items 1-2).

Real rounds: a LocalChain, a LocalStore, the synthetic corpus and two tiny honest models; faults
are injected by wrapping the real functions for one model only.
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
import threading
import time

import pytest

from subnet.hub.download import FetchDeadline
from subnet.hub.errors import ModelRejected
from subnet.hub.store import StoreError
from subnet.validator import state as st
from subnet.validator.round import run_round
from tests.hostile_repos import honest_model
from tests.test_validator_e2e import _config, _deps
from tests.validator_fixtures import LocalSubnet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("containment")
    return {label: honest_model(root / label, seed=i) for i, label in enumerate(("honest", "victim"))}


@pytest.fixture(scope="module")
def shared_subnet(tmp_path_factory, models):
    """One chain and store for the module (wallets and uploads are the slow part); each test has its own state."""
    s = LocalSubnet(tmp_path_factory.mktemp("subnet"), block_time=0.2)
    for label, path in models.items():
        s.publish(label, path)
    s.advance_to(max(m.block for m in s.miners.values()) + 20)
    yield s
    s.close()


@pytest.fixture
def subnet(shared_subnet):
    shared_subnet.chain.advance(5)  # past the weights rate limit of the previous test's round
    return shared_subnet


def _round(tmp_path, subnet, **config):
    deps = _deps(_config(tmp_path, subnet, **config), subnet)
    return deps, run_round(deps)


def _victim(deps, subnet):
    return next(m for m in deps.state.models() if m.hotkey == subnet.miners["victim"].hotkey)


def _honest_has_the_weight(deps, subnet, summary) -> None:
    assert summary.weights_status == st.ROUND_WEIGHTS_SET, summary
    on_chain = subnet.chain.weights_of(subnet.validator_wallet.hotkey.ss58_address)
    assert on_chain.get(subnet.miners["honest"].uid, 0) > 0.99, on_chain


EXCEPTIONS = [
    (MemoryError(), "check_out_of_memory", True),
    (RecursionError("maximum recursion depth exceeded"), "check_error", True),
    (ValueError("Exceeds the limit (4300 digits) for integer string conversion"), "check_error", True),
    (OverflowError("cannot convert float infinity to integer"), "check_error", True),
    (KeyError("dtype"), "check_error", True),
    (TypeError("'NoneType' object is not subscriptable"), "check_error", True),
    (ZeroDivisionError("division by zero"), "check_error", True),
    (IndexError("list index out of range"), "check_error", True),
    (AssertionError("internal invariant"), "check_error", True),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "check_error", True),
    (struct.error("unpack requires a buffer of 8 bytes"), "check_error", True),
    (RuntimeError("a bug in our checks"), "check_error", True),
    (PermissionError(errno.EACCES, "Permission denied"), "fetch_io_error", True),
    (OSError(errno.ENOSPC, "No space left on device"), "disk_full", True),
    (FetchDeadline("took too long"), "fetch_timeout", True),
    (StoreError("503 Service Unavailable", transient=True), "store_unavailable", True),
    (StoreError("401 Unauthorized"), "store_unavailable", True),  # asked again before it is believed
    (ModelRejected("bad_config", "a property of the repo"), "bad_config", False),
]


# Every exception type where the checks run; a few where the store is called (the same boundary).
STAGED = [("check_model_dir", *e) for e in EXCEPTIONS] + [
    ("list_files", *e) for e in EXCEPTIONS if isinstance(e[0], (MemoryError, RecursionError, StoreError, ModelRejected))
]


@pytest.mark.parametrize("stage,exc,reason,transient", STAGED,
                         ids=[f"{s[0]}-{type(s[1]).__name__}-{s[2]}" for s in STAGED])
def test_no_exception_from_fetching_or_checking_fails_a_round(tmp_path, subnet, monkeypatch, exc, reason, transient,
                                                              stage):
    from subnet.hub import loading

    victim_hotkey = subnet.miners["victim"].hotkey
    if stage == "check_model_dir":
        real = loading.check_model_dir

        def check(path, competition, **kw):
            if victim_hotkey in str(path):
                raise exc
            return real(path, competition, **kw)

        monkeypatch.setattr(loading, "check_model_dir", check)
    else:
        real_list = subnet.store.list_files

        def list_files(namespace, name, commit):
            if name == "victim":
                raise exc
            return real_list(namespace, name, commit)

        monkeypatch.setattr(subnet.store, "list_files", list_files)
    deps, summary = _round(tmp_path, subnet)
    _honest_has_the_weight(deps, subnet, summary)
    victim = _victim(deps, subnet)
    assert victim.reason == reason and victim.detail, victim
    assert victim.status == (st.MODEL_RETRY if transient else st.MODEL_FAILED), victim
    outcome = summary.competitions["tiny"]  # our own faults are set aside, never judged (issue 30)
    assert (outcome.own_faults if transient else outcome.failed)[victim_hotkey] == reason
    assert victim_hotkey not in (outcome.failed if transient else outcome.own_faults)
    assert f'validator_model_failures_total{{reason="{reason}"}} 1.0' in deps.metrics.render().decode()
    deps.state.close()


def test_transient_failures_are_retried_then_parked_never_failed(tmp_path, subnet, monkeypatch):
    real_list = subnet.store.list_files
    broken = {"on": True}

    def list_files(namespace, name, commit):
        if name == "victim" and broken["on"]:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_list(namespace, name, commit)

    monkeypatch.setattr(subnet.store, "list_files", list_files)
    deps = _deps(_config(tmp_path, subnet), subnet)
    for _ in range(3):
        run_round(deps)
        subnet.chain.advance(3)
    victim = _victim(deps, subnet)
    assert victim.status == st.MODEL_RETRY and victim.transient_failures == 3 and victim.parked(), victim
    # Parked: the next round does not even try it.
    summary = run_round(deps)
    assert subnet.miners["victim"].hotkey not in summary.competitions["tiny"].failed
    assert summary.competitions["tiny"].own_faults[subnet.miners["victim"].hotkey] == "fetch_io_error"  # parked
    # The store is back and the parking is over: verified, and every count of failures is reset.
    broken["on"] = False
    with deps.state.transaction() as db:
        db.execute("UPDATE models SET retry_after = ? WHERE id = ?", (time.time() - 1, victim.id))
    subnet.chain.advance(3)
    run_round(deps)
    victim = _victim(deps, subnet)
    assert victim.status == st.MODEL_VERIFIED and victim.attempts == 0 and victim.transient_failures == 0
    deps.state.close()


def test_mark_verified_is_not_a_failed_attempt(tmp_path):
    from subnet.validator.state import ValidatorState

    state = ValidatorState(tmp_path / "state.sqlite")
    m = state.upsert_commitment("5Hk", 1, "ns:name:" + "a" * 40 + ":h:tiny", 10, "tiny")
    for _ in range(5):
        state.mark_verified(m.id, "/x", "hash")
    state.mark_failed(m.id, "store_unavailable", "503", transient=True)
    m = state.model(m.id)
    assert m.attempts == 1 and m.transient_failures == 1 and not m.parked()
    state.close()


def test_a_cache_deleted_mid_round_is_fetched_again_and_scored_next_round(tmp_path, subnet):
    deps = _deps(_config(tmp_path, subnet), subnet)
    scorer = deps.scorer

    def deleting_scorer(jobs, competition, docs):
        for job in jobs:
            if subnet.miners["victim"].hotkey in job.model_dir:
                shutil.rmtree(job.model_dir)
        return scorer(jobs, competition, docs)

    deps.scorer = deleting_scorer
    run_round(deps)
    victim = _victim(deps, subnet)
    assert victim.status == st.MODEL_VERIFIED, victim  # our cache's fault: never failed
    deps.scorer = scorer
    subnet.chain.advance(3)
    summary = run_round(deps)
    assert subnet.miners["victim"].hotkey in summary.competitions["tiny"].mean_loss
    deps.state.close()


def test_same_size_damage_to_a_cached_copy_is_found_before_scoring(tmp_path, subnet):
    deps = _deps(_config(tmp_path, subnet), subnet)
    run_round(deps)
    path = _victim(deps, subnet).model_dir
    weights = os.path.join(path, "model.safetensors")
    with open(weights, "r+b") as f:  # what a failing disk does: same size, different bytes
        f.seek(-64, os.SEEK_END)
        f.write(b"\xff" * 64)
    subnet.chain.advance(3)
    summary = run_round(deps)
    victim = _victim(deps, subnet)
    assert victim.status == st.MODEL_VERIFIED
    assert subnet.miners["victim"].hotkey in summary.competitions["tiny"].mean_loss
    from subnet.hub.hashing import directory_hash

    assert directory_hash(path) == victim.content_hash  # fetched again from the store
    deps.state.close()


def test_disk_below_the_floor_is_transient_and_counted(tmp_path, subnet):
    deps, summary = _round(tmp_path, subnet, min_free_disk_bytes=1 << 62)
    assert set(summary.competitions["tiny"].own_faults.values()) == {"disk_full"}
    assert not summary.competitions["tiny"].failed
    assert all(m.status == st.MODEL_RETRY for m in deps.state.models())
    assert 'validator_model_failures_total{reason="disk_full"} 2.0' in deps.metrics.render().decode()
    deps.state.close()


def test_a_slow_store_hits_the_fetch_deadline_and_a_stop_is_answered_at_once(tmp_path, subnet, monkeypatch):
    real_download = subnet.store.download
    release = threading.Event()

    def slow_download(namespace, name, *a, **kw):
        if name == "victim":
            release.wait(30)
        return real_download(namespace, name, *a, **kw)

    monkeypatch.setattr(subnet.store, "download", slow_download)
    started = time.monotonic()
    deps, summary = _round(tmp_path, subnet, fetch_timeout_per_model_s=1.0)
    assert summary.competitions["tiny"].own_faults[subnet.miners["victim"].hotkey] == "fetch_timeout"
    _honest_has_the_weight(deps, subnet, summary)
    assert time.monotonic() - started < 25
    # A stop while a fetch hangs ends the round within a poll interval, not at the deadline.
    from subnet.validator.context import RoundAborted

    deps.config.fetch_timeout_per_model_s = 60.0
    with deps.state.transaction() as db:
        db.execute("UPDATE models SET retry_after = NULL")
    threading.Timer(1.0, deps.stop.set).start()
    started = time.monotonic()
    with pytest.raises(RoundAborted):
        subnet.chain.advance(3)
        run_round(deps)
    assert time.monotonic() - started < 10
    release.set()
    deps.state.close()
