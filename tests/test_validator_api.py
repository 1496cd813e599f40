"""The status API, served for real on an ephemeral port and read with a real aiohttp client."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import aiohttp
import pytest

from subnet.hub.model_ref import ModelRef
from subnet.validator import state as st
from subnet.validator.api import StatusServer, build_app
from subnet.validator.metrics import ValidatorMetrics
from subnet.validator.score_table import COLUMNS, scores_table
from subnet.validator.state import ResultRow, ValidatorState


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
