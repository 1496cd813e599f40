"""`subnet scores`: the validator's scores read from its state directory or its status API.

The state is a real SQLite `ValidatorState` written through its public API; the API is the real
aiohttp status server on an ephemeral port. Both sources must give the same rows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket

import pytest
from typer.testing import CliRunner

from subnet.commands.main import app
from subnet.hub.model_ref import ModelRef
from subnet.validator import state as st
from subnet.validator.api import StatusServer, build_app
from subnet.validator.metrics import ValidatorMetrics
from subnet.validator.state import ResultRow, ValidatorState

runner = CliRunner()


def _ref(name: str) -> str:
    digest = base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()
    return ModelRef("miner", name, "abcdef1234", digest, "tiny").encode()


def _scored_round(state: ValidatorState, block: int, good, copy, good_loss: float, ema: dict) -> None:
    rid = state.start_round(block, f"0xseed{block}")
    state.record_round_data(rid, "tiny", f"0xseed{block}", ["p1"], "digest", 10)
    state.complete_scoring(
        rid,
        [ResultRow("tiny", "hk-good", 1, good.id, good_loss, good_loss - 0.1, good_loss + 0.1, 10, 500.0,
                   win_rate=1.0),
         ResultRow("tiny", "hk-copy", 2, copy.id, good_loss, good_loss - 0.1, good_loss + 0.1, 10, 500.0,
                   win_rate=0.0, copy_of="hk-good")],
        [],
        {"tiny": ema},
        [good.id, copy.id],
    )
    state.finish_round(rid, st.ROUND_DONE)


@pytest.fixture
def state_dir(tmp_path):
    """A validator state after two scored rounds: a good model, its copy, and a rejected one."""
    directory = tmp_path / "validator"
    directory.mkdir()
    s = ValidatorState(directory / "state.sqlite")
    good = s.upsert_commitment("hk-good", 1, _ref("good"), 100, "tiny")
    copy = s.upsert_commitment("hk-copy", 2, _ref("copy"), 150, "tiny")
    bad = s.upsert_commitment("hk-bad", 3, _ref("bad"), 120, "tiny")
    s.mark_verified(good.id, "/m/good", "H1")
    s.mark_verified(copy.id, "/m/copy", "H1")
    s.mark_failed(bad.id, "forbidden_files", "pytorch_model.bin is not allowed")
    _scored_round(s, 1000, good, copy, 2.5, {"hk-good": 0.75, "hk-bad": 0.25})
    _scored_round(s, 1010, good, copy, 2.4, {"hk-good": 1.0})
    s.close()
    return directory


def scores(*args: str):
    result = runner.invoke(app, ["scores", *args])
    return result


def json_rows(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])["scores"]


def test_scores_from_state(state_dir):
    rows = json_rows(scores("--state", str(state_dir), "--json"))
    by_hotkey = {r["hotkey"]: r for r in rows}
    assert [r["hotkey"] for r in rows][0] == "hk-good"  # heaviest first
    good = by_hotkey["hk-good"]
    assert good["weight"] == 1.0 and good["status"] == "scored"
    assert good["mean_loss"] == pytest.approx(2.4)  # the latest round, not the first
    assert good["ci_low"] == pytest.approx(2.3) and good["ci_high"] == pytest.approx(2.5)
    assert good["age_blocks"] == 1010 - 100
    assert by_hotkey["hk-copy"]["status"] == "copy" and by_hotkey["hk-copy"]["weight"] == 0.0
    assert by_hotkey["hk-bad"]["status"] == "failed" and by_hotkey["hk-bad"]["reason"] == "forbidden_files"


def test_state_may_name_the_sqlite_file_itself(state_dir):
    assert json_rows(scores("--state", str(state_dir / "state.sqlite"), "--json")) == json_rows(
        scores("--state", str(state_dir), "--json"))


def test_human_table_lists_every_model(state_dir):
    result = scores("--state", str(state_dir))
    assert result.exit_code == 0, result.output
    for text in ("uid", "weight", "hk-good", "hk-copy", "hk-bad", "copy", "forbidden_files", "1.0000"):
        assert text in result.output


def test_api_and_state_give_the_same_rows(state_dir):
    state = ValidatorState(state_dir / "state.sqlite")
    server = StatusServer(build_app(state, ValidatorMetrics()), "127.0.0.1", 0)
    port = server.start()
    try:
        from_api = json_rows(scores("--url", f"http://127.0.0.1:{port}", "--json"))
        from_api_filtered = json_rows(scores("--url", f"http://127.0.0.1:{port}/", "-c", "tiny", "--json"))
    finally:
        server.stop()
        state.close()
    from_state = json_rows(scores("--state", str(state_dir), "--json"))
    assert len(from_state) == 3
    assert from_api == from_state
    assert from_api_filtered == from_state  # every row here is in competition tiny


def test_competition_filter(state_dir):
    assert json_rows(scores("--state", str(state_dir), "-c", "tiny", "--json"))
    result = scores("--state", str(state_dir), "-c", "b3")
    assert result.exit_code == 0
    assert "no models to show yet for competition 'b3'" in result.output


def test_missing_state_dir_names_the_path(tmp_path):
    missing = tmp_path / "no-such-validator"
    result = scores("--state", str(missing))
    assert result.exit_code == 1
    assert "no validator state" in result.output
    assert "no-such-validator" in result.output.replace("\n", "")


def test_unreadable_state_file_is_a_clear_error(tmp_path):
    (tmp_path / "state.sqlite").write_bytes(b"this is not a database" * 100)
    result = scores("--state", str(tmp_path))
    assert result.exit_code == 1
    assert "cannot read validator state" in result.output


@pytest.mark.parametrize("args", [[], ["--state", "x", "--url", "http://127.0.0.1:1"]])
def test_exactly_one_source_is_required(args):
    result = scores(*args)
    assert result.exit_code == 2
    assert "exactly one of --state" in result.output


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_url_is_a_clear_error():
    url = f"http://127.0.0.1:{_closed_port()}"
    result = scores("--url", url)
    assert result.exit_code == 1
    assert "cannot read scores from" in result.output
    assert url.split("//")[1] in result.output.replace("\n", "")


def test_empty_state_says_there_is_nothing_yet(tmp_path):
    ValidatorState(tmp_path / "state.sqlite").close()
    result = scores("--state", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "no models to show yet" in result.output
    assert json_rows(scores("--state", str(tmp_path), "--json")) == []


def test_plot_writes_a_png(state_dir, tmp_path):
    out = tmp_path / "history.png"
    result = scores("--state", str(state_dir), "--plot", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert out.stat().st_size > 1000


def test_plot_without_scored_rounds_or_without_state_fails_clearly(tmp_path):
    ValidatorState(tmp_path / "state.sqlite").close()
    out = tmp_path / "history.png"
    result = scores("--state", str(tmp_path), "--plot", str(out))
    assert result.exit_code == 1 and "no scored rounds" in result.output
    assert not out.exists()
    result = scores("--url", f"http://127.0.0.1:{_closed_port()}", "--plot", str(out))
    assert result.exit_code == 2 and "--plot needs --state" in result.output


def test_plot_copes_with_a_result_without_an_interval(tmp_path):
    s = ValidatorState(tmp_path / "state.sqlite")
    model = s.upsert_commitment("hk-one", 1, _ref("one"), 100, "tiny")
    s.mark_verified(model.id, "/m/one", "H1")
    rid = s.start_round(1000, "0xseed")
    s.complete_scoring(rid, [ResultRow("tiny", "hk-one", 1, model.id, 3.0, None, None, 1, 10.0)], [],
                       {"tiny": {"hk-one": 1.0}}, [model.id])
    s.close()
    out = tmp_path / "one.png"
    result = scores("--state", str(tmp_path), "--plot", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG")


def test_departed_hotkeys_are_hidden_unless_asked_for(state_dir):
    """A hotkey missing from the latest round's metagraph leaves the table; --deregistered shows it."""
    s = ValidatorState(state_dir / "state.sqlite")
    good = s.upsert_commitment("hk-good", 1, _ref("good"), 100, "tiny")
    rid = s.start_round(1020, "0xseed1020")
    s.complete_scoring(rid, [], [], {"tiny": {"hk-good": 1.0}}, [good.id], registered={"hk-good": 1, "hk-bad": 3})
    s.finish_round(rid, st.ROUND_DONE)
    s.close()

    shown = {r["hotkey"] for r in json_rows(scores("--state", str(state_dir), "--json"))}
    assert shown == {"hk-good", "hk-bad"}
    everyone = {r["hotkey"]: r for r in json_rows(scores("--state", str(state_dir), "--json", "--deregistered"))}
    assert everyone["hk-copy"]["status"] == "deregistered" and everyone["hk-copy"]["weight"] == 0


def test_scores_render_any_stored_commitment(tmp_path):
    """Bytes from the chain, markup-like text and control characters: shown as text, never a crash."""
    state = ValidatorState(tmp_path / "state.sqlite")
    state.upsert_commitment("hk-bytes", 1, b"\xff\x00raw:bytes", 10, None, parse_error="not UTF-8")
    state.upsert_commitment("hk-markup", 2, "[red]x[/bogus]", 10, None, parse_error="[/x] no")
    state.close()
    for extra in ([], ["--json"]):
        result = runner.invoke(app, ["scores", "--state", str(tmp_path), *extra])
        assert result.exit_code == 0, result.output
        assert "[red]x[/bogus]" in result.output and "\x00" not in result.output


GOOD_HK = "5GoodHotkey" + "a" * 37  # real hotkeys are 48 characters: too long to name a copy by
COPY_HK = "5CopyHotkey" + "b" * 37


def test_copies_and_pairs_are_named_by_uid_and_model(tmp_path):
    """Issue 29: a copy read "copy of <48-character hotkey>", wrapped; pairs named hotkey prefixes only."""
    from subnet.validator.state.evidence import EvidenceRecord

    s = ValidatorState(tmp_path / "state.sqlite")
    good = s.upsert_commitment(GOOD_HK, 3, _ref("good"), 100, "tiny")
    copy = s.upsert_commitment(COPY_HK, 5, _ref("copy"), 150, "tiny")
    for m in (good, copy):
        s.mark_verified(m.id, f"/m/{m.id}", "H1")
    rid = s.start_round(1000, "0xseed")
    s.complete_scoring(
        rid, [ResultRow("tiny", GOOD_HK, 3, good.id, 2.5, 2.4, 2.6, 10, 1.0, win_rate=1.0),
              ResultRow("tiny", COPY_HK, 5, copy.id, 2.5, 2.4, 2.6, 10, 1.0, copy_of=GOOD_HK)], [],
        {"tiny": {GOOD_HK: 1.0}}, [good.id, copy.id], registered={GOOD_HK: 3, COPY_HK: 5}, decided=["tiny"],
        evidence=[EvidenceRecord("tiny", good.id, copy.id, GOOD_HK, COPY_HK, 0.0, 1.0, 2, 0.003, -0.01, 0.01)])
    s.finish_round(rid, st.ROUND_DONE)
    s.close()
    result = runner.invoke(app, ["scores", "--state", str(tmp_path)], env={"COLUMNS": "220"})
    assert result.exit_code == 0, result.output
    assert "copy of uid 3 (5GoodHot)" in result.output
    assert GOOD_HK not in result.output and GOOD_HK[:20] not in result.output
    assert "uid 3 miner/good@abcdef12 (5GoodHot)" in result.output
    assert "uid 5 miner/copy@abcdef12 (5CopyHot)" in result.output
    payload = json.loads(runner.invoke(app, ["scores", "--state", str(tmp_path), "--json"]).stdout.splitlines()[-1])
    [pair] = payload["evidence"]
    assert (pair["earlier_uid"], pair["later_uid"], pair["later_model"]) == (3, 5, "miner/copy@abcdef12")
