"""The status API, served for real on an ephemeral port and read with a real aiohttp client."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

import aiohttp
import pytest

from subnet.hub.model_ref import ModelRef
from subnet.validator import state as st
from subnet.validator.api import StatusServer, build_app, strict_dumps
from subnet.validator.metrics import ValidatorMetrics
from subnet.validator.operator_status import operator_status, record_identity
from subnet.validator.score_table import COLUMNS, EVIDENCE_COLUMNS, evidence_table, scores_table
from subnet.validator.state import ResultRow, ValidatorState
from subnet.validator.state.evidence import EvidenceRecord


def _ref(name: str) -> str:
    h = base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()
    return ModelRef("miner", name, "abcdef1234", h, "tiny").encode()


@pytest.fixture
def populated(tmp_path):
    s = ValidatorState(tmp_path / "state.sqlite")
    good = s.upsert_commitment("hk-good", 1, _ref("good"), 100, "tiny")
    copy = s.upsert_commitment("hk-copy", 2, _ref("copy"), 150, "tiny")
    bad = s.upsert_commitment("hk-bad", 3, _ref("bad"), 120, "tiny")
    s.upsert_commitment("hk-junk", 4, "not a ref", 130, None, parse_error="commitment has 1 field(s)")
    s.mark_verified(good.id, "/m/good", "H1")
    s.mark_verified(copy.id, "/m/copy", "H1")
    s.mark_failed(bad.id, "unsafe_file", "pytorch_model.bin is not allowed")
    rid = s.start_round(1000, "0xseed")
    s.record_round_data(rid, "tiny", "0xseed", ["p1"], "d", 10)
    s.complete_scoring(
        rid,
        [ResultRow("tiny", "hk-good", 1, good.id, 2.5, 2.4, 2.6, 10, 500.0, win_rate=1.0),
         ResultRow("tiny", "hk-copy", 2, copy.id, 2.5, 2.4, 2.6, 10, 500.0, win_rate=0.0, copy_of="hk-good")],
        [],
        {"tiny": {"hk-good": 1.0}},
        [good.id, copy.id],
    )
    s.finish_round(rid, st.ROUND_DONE)
    yield s
    s.close()


def test_scores_table_rows(populated):
    rows = {r["hotkey"]: r for r in scores_table(populated, current_block=1100)}
    assert all(set(r) == set(COLUMNS) for r in rows.values())
    good = rows["hk-good"]
    assert good["status"] == "scored" and good["weight"] == 1.0 and good["age_blocks"] == 1000
    assert good["model"] == "miner/good@abcdef12" and good["mean_loss"] == 2.5 and good["win_rate"] == 1.0
    assert 0 < good["advantage"] <= 0.004
    assert rows["hk-copy"]["status"] == "copy" and "hk-good" in rows["hk-copy"]["reason"]
    assert rows["hk-bad"]["status"] == "failed" and rows["hk-bad"]["reason"] == "unsafe_file"
    assert rows["hk-junk"]["status"] == "invalid" and rows["hk-junk"]["model"] == "not a ref"
    assert list(rows)[0] == "hk-good"  # heaviest first
    assert rows["hk-good"]["round"] == rows["hk-copy"]["round"] is not None and rows["hk-bad"]["round"] is None


def test_scores_table_names_the_round_of_each_loss(populated):
    """A later round that scores only the holder (a backfill) leaves the copy's row on the earlier round."""
    [first] = populated.rounds(limit=1)
    good = next(m for m in populated.models() if m.hotkey == "hk-good")
    rid = populated.start_round(1200, "0xseed2")
    populated.complete_scoring(rid, [ResultRow("tiny", "hk-good", 1, good.id, 2.7, 2.6, 2.8, 10, 500.0, win_rate=1.0)],
                               [], {"tiny": {"hk-good": 1.0}}, [good.id])
    populated.finish_round(rid, st.ROUND_DONE)
    rows = {r["hotkey"]: r for r in scores_table(populated, current_block=1300)}
    assert (rows["hk-good"]["round"], rows["hk-good"]["mean_loss"]) == (rid, 2.7)
    assert (rows["hk-copy"]["round"], rows["hk-copy"]["mean_loss"]) == (first.id, 2.5)


def test_http_endpoints(populated):
    metrics = ValidatorMetrics()
    metrics.rounds.labels(status="done").inc()
    metrics.failures.labels(reason="unsafe_file").inc()
    server = StatusServer(build_app(populated, metrics, current_block=lambda: 1100, healthz_max_age_s=3600),
                          "127.0.0.1", 0)
    port = server.start()

    async def scenario():
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
                body = await r.json()
                assert body["ok"] and body["last_round_age_s"] < 60
            async with http.get(f"{base}/scores?competition=tiny") as r:
                body = await r.json()
                assert body["current_block"] == 1100
                assert {row["hotkey"] for row in body["scores"]} == {"hk-good", "hk-copy", "hk-bad"}
            async with http.get(f"{base}/rounds") as r:
                [rnd] = (await r.json())["rounds"]
                assert rnd["status"] == "done" and rnd["data"][0]["page_ids"] == ["p1"]
            async with http.get(f"{base}/rounds?limit=x") as r:
                assert r.status == 400
            async with http.get(f"{base}/metrics") as r:
                text = await r.text()
                assert 'validator_model_failures_total{reason="unsafe_file"} 1.0' in text
                assert 'validator_rounds_total{status="done"} 1.0' in text

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_healthz_is_503_when_no_round_for_too_long(tmp_path):
    s = ValidatorState(tmp_path / "s.sqlite")
    server = StatusServer(build_app(s, ValidatorMetrics(), healthz_max_age_s=0.0, started_at=0.0), "127.0.0.1", 0)
    port = server.start()

    async def scenario():
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert r.status == 503
                assert (await r.json())["last_round_id"] is None

    try:
        asyncio.run(scenario())
    finally:
        server.stop()
        s.close()


def test_port_in_use_is_a_clear_error(tmp_path):
    s = ValidatorState(tmp_path / "s.sqlite")
    first = StatusServer(build_app(s, ValidatorMetrics()), "127.0.0.1", 0)
    port = first.start()
    try:
        with pytest.raises(RuntimeError, match=f"127.0.0.1:{port}"):
            StatusServer(build_app(s, ValidatorMetrics()), "127.0.0.1", port).start()
    finally:
        first.stop()
        s.close()


def test_scores_leave_out_deregistered_hotkeys_unless_asked(populated):
    # A later round saw hk-bad gone from the metagraph (and hk-good at uid 1, hk-copy at 2, hk-junk at 4).
    rid = populated.start_round(1200, "0xseed2")
    populated.complete_scoring(rid, [], [], {"tiny": {"hk-good": 1.0}}, [],
                               registered={"hk-good": 1, "hk-copy": 2, "hk-junk": 4})
    populated.finish_round(rid, st.ROUND_DONE)
    rid = populated.start_round(1300, "0xseed3")
    populated.complete_scoring(rid, [], [], {"tiny": {"hk-good": 1.0}}, [],
                               registered={"hk-good": 1, "hk-junk": 4})  # hk-copy leaves too
    populated.finish_round(rid, st.ROUND_DONE)
    server = StatusServer(build_app(populated, ValidatorMetrics(), current_block=lambda: 1300), "127.0.0.1", 0)
    port = server.start()

    async def scenario():
        base = f"http://127.0.0.1:{port}/scores?competition=tiny"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with http.get(base) as r:
                assert [row["hotkey"] for row in (await r.json())["scores"]] == ["hk-good"]
            async with http.get(base + "&deregistered=1") as r:
                rows = {row["hotkey"]: row for row in (await r.json())["scores"]}
        assert set(rows) == {"hk-good", "hk-copy", "hk-bad"}
        copy = rows["hk-copy"]
        assert (copy["status"], copy["uid"], copy["weight"]) == ("deregistered", None, 0.0)
        assert copy["reason"] == "last seen registered at block 1200, as uid 2"
        assert copy["mean_loss"] == 2.5  # its last result stays on record
        # hk-bad left before registrations were recorded: still reported, without a last uid.
        assert rows["hk-bad"]["status"] == "deregistered" and rows["hk-bad"]["uid"] is None

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def _strict(text: str):
    """Parse as strict JSON: Python's json accepts NaN and Infinity, which browsers and jq refuse."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def test_every_endpoint_answers_strict_json(populated):
    # `subnet scores --serve` runs without an age limit (inf), which /healthz used to print as `Infinity`;
    # a result without a finite loss must not leak NaN either.
    nan = float("nan")
    rid = populated.start_round(1100, "0xseed-nan")
    populated.complete_scoring(rid, [ResultRow("tiny", "hk-good", 1, 1, nan, nan, nan, 10, nan, win_rate=nan)], [],
                               {"tiny": {"hk-good": 1.0}}, [1])
    populated.finish_round(rid, st.ROUND_DONE)
    server = StatusServer(build_app(populated, ValidatorMetrics(), healthz_max_age_s=float("inf")), "127.0.0.1", 0)
    port = server.start()

    async def scenario():
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            for path in ("/healthz", "/status", "/scores", "/evidence", "/rounds", "/history",
                         "/history?competition=tiny", "/pairs?competition=tiny", "/pairs", "/rounds?limit=x"):
                async with http.get(f"http://127.0.0.1:{port}{path}") as r:
                    assert r.content_type == "application/json", path
                    body = _strict(await r.text())
                    if path == "/healthz":
                        assert r.status == 200 and body["max_age_s"] is None  # no limit, said in JSON

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_strict_dumps_turns_every_non_finite_number_into_null():
    body = {"a": float("inf"), "b": [float("-inf"), float("nan"), 1.5], "c": {"d": (float("nan"),)}, "e": "Infinity"}
    assert _strict(strict_dumps(body)) == {"a": None, "b": [None, None, 1.5], "c": {"d": [None]}, "e": "Infinity"}


def test_status_names_the_validator_its_weights_and_its_next_round(populated):
    record_identity(populated, {"hotkey": "5Fvalidator", "uid": 9, "netuid": 2, "network": "local", "version": "1.2.3",
                                "commit": "abc1234", "round_interval_s": 600.0, "weights_interval_blocks": 100})
    [last] = populated.rounds(limit=1)
    attempt = populated.record_weights_intent(last.id, 1000, [1], [1.0])
    populated.record_weights_outcome(attempt, True, "ok", 1002)
    status = operator_status(populated, now=last.finished_at + 60.0, served_by={"version": "1.2.4"})
    assert status["identity"] == {"hotkey": "5Fvalidator", "uid": 9, "netuid": 2, "network": "local",
                                  "version": "1.2.3", "commit": "abc1234", "round_interval_s": 600.0,
                                  "weights_interval_blocks": 100}
    assert status["served_by"] == {"version": "1.2.4"}
    weights = status["last_weights"]
    assert (weights["status"], weights["block"], weights["round_id"]) == ("success", 1002, last.id)
    assert weights["age_s"] == pytest.approx(last.finished_at + 60.0 - weights["at"], abs=0.1)
    assert status["next_round"] == {"in_progress": None, "at": pytest.approx(last.finished_at + 600.0),
                                    "in_s": pytest.approx(540.0, abs=0.1)}
    assert status["next_weights_block"] == 1102
    # A round in progress is named; a state the daemon never recorded an identity in says so with nulls.
    populated.start_round(1200, "0xnext")
    assert operator_status(populated)["next_round"]["in_progress"] == last.id + 1


def test_status_of_a_state_without_identity_is_all_unknown(tmp_path):
    s = ValidatorState(tmp_path / "s.sqlite")
    try:
        status = operator_status(s)
        assert set(status["identity"].values()) == {None}
        assert status["last_weights"] is None and status["next_weights_block"] is None
        assert status["next_round"] == {"in_progress": None, "at": None, "in_s": None}
    finally:
        s.close()


def test_copies_and_evidence_name_uids_and_models(populated):
    rows = {r["hotkey"]: r for r in scores_table(populated)}
    assert rows["hk-copy"]["reason"] == "copy of uid 1 (hk-good)"
    good, copy = (m for m in populated.models() if m.hotkey in ("hk-good", "hk-copy"))
    rid = populated.start_round(1100, "0xe")
    populated.complete_scoring(rid, [], [], {"tiny": {"hk-good": 1.0}}, [], decided=["tiny"], evidence=[
        EvidenceRecord("tiny", good.id, copy.id, "hk-good", "hk-copy", 0.0, 1.0, 3, 0.003, -0.01, 0.01)])
    populated.finish_round(rid, st.ROUND_DONE)
    [pair] = evidence_table(populated)
    assert set(pair) == set(EVIDENCE_COLUMNS)
    assert (pair["earlier_uid"], pair["earlier_model"]) == (1, "miner/good@abcdef12")
    assert (pair["later_uid"], pair["later_model"]) == (2, "miner/copy@abcdef12")


def test_build_app_stays_short():
    """Issue 29: it had grown to 87 lines; its handlers live on `_Routes`."""
    import inspect

    from subnet.validator import api

    for name, fn in [("build_app", api.build_app)] + inspect.getmembers(api._Routes, inspect.isfunction):
        assert len(inspect.getsource(fn).splitlines()) < 60, name


def test_identity_of_a_running_validator_names_its_config_and_build():
    from subnet import __version__
    from subnet.validator.config import ValidatorConfig
    from subnet.validator.operator_status import IDENTITY_KEYS, identity_of

    config = ValidatorConfig(netuid=7, network="test", round_interval_s=300.0, weights_interval_blocks=50)
    identity = identity_of(config, "5Fhotkey", 12)
    assert set(identity) == set(IDENTITY_KEYS)
    assert (identity["hotkey"], identity["uid"], identity["netuid"], identity["network"]) == ("5Fhotkey", 12, 7, "test")
    assert (identity["round_interval_s"], identity["weights_interval_blocks"]) == (300.0, 50)
    assert identity["version"] == __version__ and identity["commit"]
