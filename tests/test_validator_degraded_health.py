"""/healthz, /metrics and the page report degraded operation while a fault of ours lasts (issue 30).

A real state file and the status API served for real on 127.0.0.1, read through its read-only
connection, as an operator's monitor would.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from subnet.validator import state as st
from subnet.validator.api import StatusServer, build_app
from subnet.validator.degraded import record_standing
from subnet.validator.metrics import ValidatorMetrics
from subnet.validator.state import ValidatorState
from tests.test_validator_api import _ref


@pytest.fixture
def state(tmp_path):
    s = ValidatorState(tmp_path / "state.sqlite")
    rid = s.start_round(1000, "0xseed")
    s.complete_scoring(rid, [], [], {"tiny": {"hk-best": 1.0}}, [])
    s.finish_round(rid, st.ROUND_DONE)
    yield s
    s.close()


@pytest.fixture
def api(state):
    metrics = ValidatorMetrics()
    server = StatusServer(build_app(state, metrics, healthz_max_age_s=3600), "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.start()}"
    yield base
    server.stop()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _health(base: str) -> tuple[int, dict]:
    status, body = _get(base + "/healthz")
    return status, json.loads(body)


def _metric(base: str, line: str) -> bool:
    return line in _get(base + "/metrics")[1].decode()


def test_healthy_until_a_fault_of_ours(api):
    status, body = _health(api)
    assert status == 200 and body["ok"] and body["status"] == "ok" and body["reasons"] == []


def test_models_parked_for_our_faults_are_reported_and_the_miners_own_failures_are_not(state, api, tmp_path):
    best = state.upsert_commitment("hk-best", 1, _ref("best"), 100, "tiny")
    bad = state.upsert_commitment("hk-bad", 2, _ref("bad"), 110, "tiny")
    state.mark_failed(bad.id, "forbidden_files", "a pickle", transient=False)  # the miner's: no degradation
    assert _health(api)[0] == 200
    for _ in range(3):
        state.mark_failed(best.id, "disk_full", "155,648 bytes free", transient=True)
    status, body = _health(api)
    assert status == 503 and not body["ok"] and body["status"] == "degraded"
    assert body["reasons"] == ["models_parked"] and body["models_parked"] == {"disk_full": 1}
    assert _metric(api, 'validator_models_parked{reason="disk_full"} 1.0')
    assert _metric(api, 'validator_health_failing{reason="models_parked"} 1.0')
    state.mark_verified(best.id, str(tmp_path), "H")  # the disk was grown and the model fetched
    status, body = _health(api)
    assert status == 200 and body["status"] == "ok"
    assert _metric(api, 'validator_models_parked{reason="disk_full"} 0.0')
    assert _metric(api, 'validator_health_failing{reason="models_parked"} 0.0')


def test_held_weights_are_reported_with_their_reason_until_a_round_moves_them(state, api, tmp_path):
    record_standing(state, 2, {"tiny": "not judged for our fault: hk-best (disk_full)"}, tmp_path, 0)
    status, body = _health(api)
    assert status == 503 and body["status"] == "degraded" and body["reasons"] == ["weights_held"]
    assert body["weights_held"] == {"tiny": "not judged for our fault: hk-best (disk_full)"}
    assert _metric(api, 'validator_weights_held{competition="tiny"} 1.0')
    record_standing(state, 3, {}, tmp_path, 0)
    assert _health(api)[0] == 200
    assert _metric(api, 'validator_weights_held{competition="tiny"} 0.0')


def test_a_disk_below_its_floor_is_reported(state, api, tmp_path):
    record_standing(state, 2, {}, tmp_path, 1 << 62)
    status, body = _health(api)
    assert status == 503 and body["reasons"] == ["disk_below_floor"] and body["disk_floor_bytes"] == 1 << 62
    assert 0 <= body["disk_free_bytes"] < 1 << 62
    assert _metric(api, 'validator_health_failing{reason="disk_below_floor"} 1.0')


def test_degraded_next_to_failing_says_failing(state, api, tmp_path):
    record_standing(state, 2, {}, tmp_path, 1 << 62)
    rid = state.start_round(1001, "0xseed")
    state.complete_scoring(rid, [], [], {}, [], n_due=3, n_evaluated=0)
    state.finish_round(rid, st.ROUND_DONE)
    rid = state.start_round(1002, "0xseed")
    state.complete_scoring(rid, [], [], {}, [], n_due=3, n_evaluated=0)
    state.finish_round(rid, st.ROUND_DONE)
    status, body = _health(api)
    assert status == 503 and body["status"] == "failing"
    assert body["reasons"] == ["nothing_evaluated", "disk_below_floor"]


def test_the_page_shows_degraded_health_as_text(state, api, tmp_path):
    from tests.leaderboard_fixtures import find_chromium, render_dom

    chromium = find_chromium()
    if chromium is None:
        pytest.skip("needs Chromium (Debian package 'chromium'; .ci/run installs it)")
    record_standing(state, 2, {"tiny": "not judged for our fault: <b id=pwned>hk</b> (disk_full)"}, tmp_path, 0)
    dom = render_dom(chromium, api + "/", tmp_path / "profile")
    banner = dom.split('id="health"', 1)[1].split("</div>", 1)[0]
    assert "hidden" not in banner.split(">", 1)[0]
    assert "degraded: weights held: tiny (not judged for our fault: &lt;b id=pwned&gt;hk&lt;/b&gt; (disk_full))" in banner
    assert 'id="pwned"' not in dom and "id=pwned>" not in dom
