"""The leaderboard page, served by the status API and rendered by a real headless Chromium."""

from __future__ import annotations

import json
import urllib.request
from html.parser import HTMLParser

import pytest

from subnet.validator.api import StatusServer, build_app
from subnet.validator.leaderboard import leader_differences, loss_history, page_html
from subnet.validator.metrics import ValidatorMetrics
from subnet.validator.state import ValidatorState
from tests.leaderboard_fixtures import (
    HOSTILE_COMMITMENT,
    HOSTILE_REASON,
    IDENTITY,
    find_chromium,
    populate,
    render_dom,
    screenshot,
)


class _Table(HTMLParser):
    """Rows of one table (by id) as lists of cell texts; also records every element id and the title."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.rows, self.ids, self.title = table_id, [], set(), ""
        self._in_table = self._in_body = self._in_title = False
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "table" and a.get("id") == self.table_id:
            self._in_table = True
        elif self._in_table and tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            self.rows.append([])
        elif self._in_body and tag == "td":
            self._cell = []
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._in_table = False
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_title:
            self.title += data


@pytest.fixture
def served(tmp_path):
    state = ValidatorState(tmp_path / "state.sqlite")
    populate(state, n_models=6, n_rounds=12)
    server = StatusServer(build_app(state, ValidatorMetrics(), current_block=lambda: 3000), port=0)
    port = server.start()
    yield f"http://127.0.0.1:{port}", state
    server.stop()
    state.close()


def _refuse(constant):
    raise ValueError(f"not JSON: {constant}")


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.headers, r.read()


def test_page_is_self_contained_and_small():
    html = page_html().decode()
    assert len(page_html()) < 200 * 1024
    # No CDN or remote asset: the page loads nothing but its own JSON endpoints.
    assert "http://" not in html and "src=\"http" not in html
    assert "innerHTML" not in html and "insertAdjacentHTML" not in html and "document.write" not in html


def test_json_endpoints_feed_the_page(served):
    base, state = served
    status, headers, body = _get(base + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and body == page_html()
    history = json.loads(_get(base + "/history?competition=tiny")[2])
    # One series per model, each point (round, block, mean, low, high) with low <= mean <= high.
    assert len(history["series"]) == 6 and len(history["rounds"]) == 12
    for s in history["series"]:
        for _, _, mean, low, high in s["points"]:
            assert low <= mean <= high
    copies = [s for s in history["series"] if s["copy_of"]]
    assert [c["hotkey"] for c in copies] == ["hk-005"] and copies[0]["copy_of"] == "hk-000"
    pairs = json.loads(_get(base + "/pairs?competition=tiny")[2])
    assert pairs["leader"] == "hk-000" and pairs["round_id"] == 12
    by_hotkey = {d["hotkey"]: d for d in pairs["differences"]}
    # The copy scores exactly the leader's losses: a zero difference; every other model is worse.
    assert by_hotkey["hk-005"]["diff"] == 0.0
    assert all(d["ci_low"] > 0 for hk, d in by_hotkey.items() if hk not in ("hk-005",))
    rounds = json.loads(_get(base + "/rounds?limit=3")[2])["rounds"]
    assert [r["id"] for r in rounds] == [12, 11, 10] and all("failures" in r for r in rounds)
    with pytest.raises(urllib.error.HTTPError) as e:
        _get(base + "/pairs")
    assert e.value.code == 400


def test_history_is_one_series_per_model_not_per_uid(tmp_path):
    state = ValidatorState(tmp_path / "s.sqlite")
    populate(state, n_models=2, n_rounds=2)
    # The same hotkey commits a new model: it must start a new series, not continue the old one.
    from tests.leaderboard_fixtures import model_ref
    from subnet.validator import state as st
    from subnet.validator.state import ResultRow

    new = state.upsert_commitment("hk-001", 2, model_ref("model-1b", "0123456789"), 5000, "tiny")
    rid = state.start_round(6000, "0xs")
    state.complete_scoring(rid, [ResultRow("tiny", "hk-001", 2, new.id, 1.5, 1.4, 1.6, 10, 1.0)], [],
                           {"tiny": {"hk-001": 1.0}}, [new.id])
    state.finish_round(rid, st.ROUND_DONE)
    series = [s for s in loss_history(state, "tiny")["series"] if s["hotkey"] == "hk-001"]
    assert len(series) == 2 and sorted(len(s["points"]) for s in series) == [1, 2]
    # The leader moved to hk-001, whose newest round has no per-document losses: no pairs, no crash.
    assert leader_differences(state, "tiny")["differences"] == []
    state.close()


def test_rendered_leaderboard_matches_scores_and_escapes_miner_text(served, tmp_path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("needs Chromium (Debian package 'chromium'; .ci/run installs it)")
    base, state = served
    scores = json.loads(_get(base + "/scores")[2])["scores"]
    dom = render_dom(chromium, base + "/", tmp_path / "profile")
    table = _Table("scores")
    table.feed(dom)
    # The page shows the selected competition's rows and every unparsable commitment, in /scores order.
    expected = [r for r in scores if r["competition"] in ("tiny", None)]
    assert len(table.rows) == len(expected) > 0
    for cells, row in zip(table.rows, expected):
        assert cells[0] == ("-" if row["uid"] is None else str(row["uid"]))
        assert cells[1] == row["hotkey"][:12] + ("…" if len(row["hotkey"]) > 12 else "")
        assert cells[7] == f"{row['weight']:.4f}"
        assert cells[8] == row["status"]
    # Attacker-controlled text renders as text: the markup is visible, nothing of it ran or became an element.
    reasons = [c[9] for c in table.rows]
    assert HOSTILE_REASON in reasons
    junk_row = next(c for c in table.rows if c[8] == "invalid")
    assert junk_row[2].startswith(HOSTILE_COMMITMENT[:30])
    assert "pwned" not in table.ids and "bold-reason" not in table.ids and "pwned" not in table.title
    rounds = _Table("rounds")
    rounds.feed(dom)
    assert [r[0] for r in rounds.rows][:3] == ["12", "11", "10"]
    png = screenshot(chromium, base + "/", tmp_path / "profile2", tmp_path / "leaderboard.png")
    assert png.stat().st_size > 20_000  # a rendered page, not a blank one


def test_scores_serve_is_read_only_and_stops_on_a_signal(tmp_path):
    import hashlib
    import os
    import re
    import signal
    import subprocess
    import sys

    state = ValidatorState(tmp_path / "state.sqlite")
    populate(state, n_models=3, n_rounds=3)
    state.close()
    db = tmp_path / "state.sqlite"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "subnet", "scores", "--serve", "--state", str(tmp_path),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, line
        base = f"http://127.0.0.1:{m.group(1)}"
        assert _get(base + "/")[2] == page_html()
        assert len(json.loads(_get(base + "/scores")[2])["scores"]) == 5
        assert json.loads(_get(base + "/pairs?competition=tiny")[2])["leader"] == "hk-000"
        # --serve has no age limit: /healthz said `"max_age_s": Infinity`, which no strict parser reads.
        health = json.loads(_get(base + "/healthz")[2], parse_constant=_refuse)
        assert health["ok"] and health["max_age_s"] is None
        proc.send_signal(signal.SIGTERM)  # what systemd and docker send; Ctrl-C is handled alike
        assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


class _Elements(HTMLParser):
    """Text and attributes of every element with an id; the cells of one table's body rows."""

    def __init__(self, table_id: str = "evidence") -> None:
        super().__init__()
        self.text, self.attrs, self.rows, self.legend = {}, {}, [], []
        self._open: list[tuple[str, str | None]] = []  # (tag, id) of the open elements
        self._table = _Table(table_id)

    def feed(self, data):
        self._table.feed(data)
        self.rows = self._table.rows
        super().feed(data)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.text[a["id"]], self.attrs[a["id"]] = "", a
        if tag == "li" and any(i == "legend" for _, i in self._open):
            self.legend.append("")
        if tag not in ("meta", "br", "img", "input", "link"):
            self._open.append((tag, a.get("id")))

    def handle_endtag(self, tag):
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        for _, i in self._open:
            if i:
                self.text[i] += data
        if self.legend and self._open and any(t == "li" for t, _ in self._open):
            self.legend[-1] += data


def test_rendered_page_shows_who_the_validator_is_copies_evidence_and_axes(tmp_path):
    """Issue 29: identity, health with reasons, last and next weights, the next round, "copy of uid N",
    pairs named by uid and model, and charts with labelled axes and one label per paired row."""
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("needs Chromium (Debian package 'chromium'; .ci/run installs it)")
    state = ValidatorState(tmp_path / "state.sqlite")
    populate(state, n_models=6, n_rounds=12)
    # Age limit 0: the newest round is already too old, so the header must say failing and why.
    server = StatusServer(build_app(state, ValidatorMetrics(), current_block=lambda: 3000, healthz_max_age_s=0.0),
                          port=0)
    base = f"http://127.0.0.1:{server.start()}/"
    try:
        page = _Elements()
        page.feed(render_dom(chromium, base, tmp_path / "profile"))
        png = screenshot(chromium, base, tmp_path / "profile2", tmp_path / "operator.png", window="1400,2400")
    finally:
        server.stop()
        state.close()
    t = {k: v.strip() for k, v in page.text.items()}
    assert t["op-hotkey"] == IDENTITY["hotkey"] and t["op-uid"] == "7" and t["op-netuid"] == "2 (local)"
    assert t["op-version"].startswith("9.9.9") and t["op-commit"].startswith("0123abcd")
    assert t["op-health"] == "failing: no_recent_round" and "no_recent_round" in t["health"]
    # The fixture set weights in every other round; the last at block 1000 + 150 * 11 + 2.
    assert t["op-weights"].startswith("block 2652, ") and t["op-weights"].endswith(" ago")
    assert t["op-next-weights"] == "not before block 2952"
    assert t["op-next-round"].startswith("in 10 min (") or t["op-next-round"].startswith("in 9 min (")
    # The copy (uid 6 copies uid 1): named by the uid it copied, in the legend, the table and the pairs chart.
    assert any(item.endswith("copy of uid 1") and "uid 6" in item for item in page.legend), page.legend
    assert "copy of uid 1 (hk-000)" in t["scores"]
    history = json.loads(page.attrs["history"]["data-labels"])
    assert "block of the round" in history and "loss per token (nats)" in history
    assert sum(label.isdigit() for label in history) >= 3  # block ticks along the x axis
    pairs = json.loads(page.attrs["pairs"]["data-labels"])
    for uid in (2, 3, 4, 5):
        assert f"uid {uid} miner/model-{uid - 1}@abcdef12" in pairs
    assert "uid 6 miner/model-5@abcdef12 · copy of uid 1" in pairs
    assert any(label.startswith("L(model) − L(leader)") for label in pairs)
    assert sum(label.startswith("+") and label[1:].replace(".", "").isdigit() for label in pairs) >= 3  # ticks
    assert int(page.attrs["pairs"]["style"].split("height:")[1].split("px")[0]) >= 28 * 5  # rows tall enough
    # Pair evidence: both sides by uid and model (a replaced model would show a different ref).
    assert [row[:2] for row in page.rows][:2] == [["uid 1 miner/model-0@abcdef12", "uid 2 miner/model-1@abcdef12"],
                                                   ["uid 1 miner/model-0@abcdef12", "uid 3 miner/model-2@abcdef12"]]
    assert png.stat().st_size > 20_000
