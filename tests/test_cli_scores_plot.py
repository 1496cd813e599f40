"""`subnet scores --plot` data: one series per model, copies and the weight holder marked, paired
differences from the leader with intervals (the old plot hid the winner under its copy-cat)."""

from __future__ import annotations

import base64
import hashlib

import numpy as np
import pytest

from subnet.eval.types import DocLosses
from subnet.hub.model_ref import ModelRef
from subnet.commands.scores_plot import _copy_label, _diff_label, collect, draw
from subnet.validator import state as st
from subnet.validator.state import ResultRow, ValidatorState


def _ref(name: str) -> str:
    digest = base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()
    return ModelRef("miner", name, "abcdef1234", digest, "tiny").encode()


def _losses(per_doc: np.ndarray) -> bytes:
    n = len(per_doc)
    tokens = np.full(n, 100, dtype=np.int64)
    return DocLosses(per_doc * tokens, tokens, np.full(n, 400, dtype=np.int64), np.zeros(n, dtype=np.int8)).to_bytes()


def _row(hotkey, uid, model, per_doc, copy_of=None):
    m = float(per_doc.mean())
    return ResultRow("tiny", hotkey, uid, model.id, m, m - 0.01, m + 0.01, len(per_doc), 1.0,
                     copy_of=copy_of, losses=_losses(per_doc))


@pytest.fixture
def state(tmp_path):
    s = ValidatorState(tmp_path / "state.sqlite")
    rng = np.random.default_rng(0)
    docs = 3.0 + rng.normal(0, 0.5, 200)
    old = s.upsert_commitment("hk-good", 1, _ref("good-v1"), 100, "tiny")
    weak = s.upsert_commitment("hk-weak", 2, _ref("weak"), 90, "tiny")
    rid = s.start_round(1000, "0xa")
    s.complete_scoring(rid, [_row("hk-good", 1, old, docs + 0.2), _row("hk-weak", 2, weak, docs + 0.5)], [],
                       {"tiny": {"hk-good": 1.0}}, [old.id, weak.id])
    s.finish_round(rid, st.ROUND_DONE)
    new = s.upsert_commitment("hk-good", 1, _ref("good-v2"), 1005, "tiny")  # a new model at the same uid
    copy = s.upsert_commitment("hk-copy", 3, _ref("copy"), 1006, "tiny")
    rid = s.start_round(1010, "0xb")
    s.complete_scoring(rid, [_row("hk-good", 1, new, docs), _row("hk-copy", 3, copy, docs, copy_of="hk-good"),
                             _row("hk-weak", 2, weak, docs + 0.5)], [], {"tiny": {"hk-good": 0.9, "hk-weak": 0.1}},
                       [new.id, copy.id, weak.id])
    s.finish_round(rid, st.ROUND_DONE)
    yield s
    s.close()


def test_one_series_per_model_with_copies_and_the_holder_marked(state):
    [plot] = collect(state)
    labels = sorted(s.label for s in plot.series.values())
    assert labels == ["uid 1 miner/good-v1@abcdef12", "uid 1 miner/good-v2@abcdef12", "uid 2 miner/weak@abcdef12",
                      "uid 3 miner/copy@abcdef12"]
    copy = next(s for s in plot.series.values() if "copy" in s.label)
    assert copy.copy_of == "hk-good" and copy.copy_of_uid == 1
    assert _copy_label(plot, copy) == "uid 3 miner/copy@abcdef12 (copy of uid 1)"
    assert plot.holder == "hk-good"


def test_paired_differences_from_the_leader_with_intervals(state):
    [plot] = collect(state)
    assert plot.leader == "uid 1 miner/good-v2@abcdef12" and plot.round_block == 1010
    diffs = {d.label: d for d in plot.diffs}
    weak = diffs["uid 2 miner/weak@abcdef12"]
    assert weak.mean == pytest.approx(0.5) and weak.low <= 0.5 <= weak.high and not weak.copy
    copy = diffs["uid 3 miner/copy@abcdef12"]
    assert copy.copy and copy.mean == pytest.approx(0.0, abs=1e-9)
    assert _diff_label(copy) == "uid 3 miner/copy@abcdef12 (copy of uid 1)"


def test_draws_a_png(state, tmp_path):
    out = draw(collect(state), tmp_path / "plot.png")
    assert out.read_bytes().startswith(b"\x89PNG")
