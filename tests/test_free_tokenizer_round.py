"""A validator round of a free-tokenizer competition: two tokenizers compared in bits per byte, hostile ones refused."""

from __future__ import annotations

import dataclasses
import math
import shutil

import numpy as np
import pytest

from subnet.eval.types import DocLosses
from subnet.validator import state as st
from subnet.validator.score_table import scores_table
from tests.hostile_tokenizers import CASES, FREE_COMPETITION, free_model, small_tokenizer_json, tiny_tokenizer_json
from tests.validator_fixtures import LocalSubnet

IN_ROUND = ("missing", "regex_nested_repeat", "dropout", "vocab_id_out_of_range", "lowercase_round_trip",
            "library_refuses")


@pytest.mark.slow
def test_a_free_round_scores_two_tokenizers_in_bits_per_byte_and_refuses_hostile_ones(tmp_path):
    from subnet.validator.daemon import Daemon
    from tests.test_validator_e2e import _config, _deps

    cases = {c.name: c for c in CASES if c.name in IN_ROUND}
    big = free_model(tmp_path / "big", tiny_tokenizer_json(), seed=1)
    subnet = LocalSubnet(tmp_path / "subnet", block_time=0.2)
    try:
        subnet.publish("big", big)
        subnet.publish("small", free_model(tmp_path / "small", small_tokenizer_json(), seed=2))
        for name, case in cases.items():
            target = shutil.copytree(big, tmp_path / "hostile" / name)
            case.build(target)
            subnet.publish(name, target)
        subnet.advance_to(max(m.block for m in subnet.miners.values()) + 20)
        config = _config(tmp_path, subnet, max_rounds=1, max_models_per_round=len(cases) + 4, min_revisits_per_round=0)
        free = {"tiny": FREE_COMPETITION}
        deps = dataclasses.replace(_deps(config, subnet), competitions=free, known_competitions=free)
        assert Daemon(deps, on_round=lambda s: None).run() == 0
        (round_,) = deps.state.rounds()
        assert round_.status == st.ROUND_WEIGHTS_SET, round_
        rows = {r["hotkey"]: r for r in scores_table(deps.state, "tiny", competitions=free)}
        results = {r.hotkey: r for r in deps.state.results(round_.id)}
        scored = {label: results[subnet.miners[label].hotkey] for label in ("big", "small")}
        losses = {label: DocLosses.from_bytes(r.losses) for label, r in scored.items()}
        np.testing.assert_array_equal(losses["big"].n_bytes, losses["small"].n_bytes)  # the same bytes
        assert losses["big"].n_tokens.sum() < losses["small"].n_tokens.sum()  # other tokens
        for label, r in scored.items():  # the reported loss is total bits over total bytes
            bpb = losses[label].nll_sum.sum() / math.log(2) / losses[label].n_bytes.sum()
            assert r.mean_loss == pytest.approx(bpb, rel=1e-9) and r.n_docs == len(losses[label])
        wrong = {}
        for name, case in cases.items():
            row = rows[subnet.miners[name].hotkey]
            if row["status"] != st.MODEL_FAILED or row["reason"] != case.reason or row["weight"] > 0:
                wrong[name] = (row["status"], row["reason"], row["weight"])
        assert not wrong, wrong
        assert sum(rows[subnet.miners[label].hotkey]["weight"] for label in ("big", "small")) > 0.99
        deps.state.close()
    finally:
        subnet.close()
