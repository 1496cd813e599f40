"""`subnet miner compare`: paired intervals with Holm-corrected p-values, and seeds of one config tested as a group."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from subnet.eval.types import DocLosses
from subnet.miner.experiments import analyse, holm, paired_ratio_difference, token_loss


def _losses(rng, tokens, per_token, noise=0.02):
    nll = tokens * per_token * rng.lognormal(0, noise, len(tokens))
    return DocLosses(nll, tokens.astype(np.int64), tokens * 4, np.zeros(len(tokens), np.int8))


def _holm_by_definition(p):
    """adj_i = max over all j with p_j <= p_i of min(1, (m - rank_j) p_j), ranks from 0 in ascending p."""
    m = len(p)
    order = sorted(range(m), key=lambda i: (p[i], i))
    rank = {i: r for r, i in enumerate(order)}
    return [max(min(1.0, (m - rank[j]) * p[j]) for j in range(m) if rank[j] <= rank[i]) for i in range(m)]


@pytest.mark.parametrize("seed", range(5))
def test_holm_matches_its_definition(seed):
    p = list(np.random.default_rng(seed).uniform(0, 0.2, 7))
    assert np.allclose(holm(p), _holm_by_definition(p))
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_delta_method_interval_agrees_with_a_paired_bootstrap():
    rng = np.random.default_rng(0)
    tokens = rng.integers(10, 400, 1500)
    difficulty = rng.lognormal(0, 0.2, len(tokens))
    a = _losses(rng, tokens, 2.0 * difficulty)
    b = _losses(rng, tokens, 2.01 * difficulty)
    diff, se, low, high, p, n = paired_ratio_difference(a, b)
    assert n == 1500 and low < diff < high
    assert diff == pytest.approx(token_loss(a) - token_loss(b), rel=1e-9)
    boot = []
    for _ in range(2000):
        i = rng.integers(0, n, n)
        boot.append((a.nll_sum[i].sum() - b.nll_sum[i].sum()) / tokens[i].sum())
    assert se == pytest.approx(np.std(boot), rel=0.1)
    assert (p < 0.05) == (high < 0 or low > 0)


def test_analyse_corrects_pairs_and_tests_seeds_across_runs():
    rng = np.random.default_rng(1)
    tokens = rng.integers(10, 300, 800)
    difficulty = rng.lognormal(0, 0.2, len(tokens))
    run_noise = {"a1": 1.000, "a2": 1.002, "b1": 0.990, "b2": 0.991, "c": 1.0}
    scored = {k: _losses(rng, tokens, 2.0 * v * difficulty, noise=0.01) for k, v in run_noise.items()}
    report = analyse(scored, "a1", {"cfgA": ["a1", "a2"], "cfgB": ["b1", "b2"], "single": ["c"]})
    assert [r.name for r in report.pairs] == ["a2", "b1", "b2", "c"]
    assert [r.p_holm for r in report.pairs] == pytest.approx(holm([r.p_value for r in report.pairs]))
    groups = {g.name: g for g in report.groups}
    assert set(groups) == {"cfgA", "cfgB"}  # a single run is no group
    b = groups["cfgB"]
    assert b.baseline == "cfgA" and b.diff < 0 and b.spread > 0
    assert b.p_bootstrap[0] <= b.p_bootstrap[1] <= b.p_bootstrap[2]
    from scipy import stats

    la, lb = [report.losses[k] for k in ("a1", "a2")], [report.losses[k] for k in ("b1", "b2")]
    assert b.p_value == pytest.approx(stats.ttest_ind(lb, la, equal_var=False).pvalue)


@pytest.mark.slow
def test_cli_compare_runs_checkpoints_and_seeds(tmp_path):
    from typer.testing import CliRunner

    from subnet.commands.miner_commands import app
    from subnet.miner.config import TrainConfig
    from subnet.miner.train import train
    from tests.miner_run import quiet, single_threaded_deterministic

    common = dict(competition="tiny", steps=24, seq_len=32, micro_batch_size=4, warmup_steps=4, log_every=4,
                  reference_documents=40, docs_per_chunk=40, device="cpu", checkpoint_every=8, keep_checkpoints=0)
    runs = {}
    with single_threaded_deterministic():
        for name, seed, lr in (("a1", 1, 3e-3), ("a2", 2, 3e-3), ("b1", 1, 1e-3), ("b2", 2, 1e-3)):
            train(TrainConfig(out_dir=str(tmp_path / name), seed=seed, lr=lr, **common), echo=quiet)
            runs[name] = tmp_path / name
    checkpoints = [tmp_path / "a1" / "checkpoints" / f"step_{s:08d}" for s in (8, 16)]
    args = ["compare", *map(str, runs.values()), *map(str, checkpoints), "--documents", "40", "--device", "cpu",
            "--competition", "tiny", "--json", "--plot", str(tmp_path / "compare.png")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output.strip().splitlines()[-1])
    assert payload["baseline"] == str(runs["a1"]) and len(payload["pairs"]) == 5
    assert [p["p_holm"] for p in payload["pairs"]] == pytest.approx(
        _holm_by_definition([p["p_value"] for p in payload["pairs"]]))
    # Seeds of each learning rate form a group; checkpoints are steps of a run, never seeds.
    groups = {tuple(g["runs"]) for g in payload["groups"]}
    assert groups == {(str(runs["a1"]), str(runs["a2"])), (str(runs["b1"]), str(runs["b2"]))}
    # An earlier checkpoint of the same run is worse than its end.
    early = next(p for p in payload["pairs"] if p["name"] == str(checkpoints[0]))
    assert early["diff"] > 0 and math.isfinite(early["ci_low"])
    assert (tmp_path / "compare.png").stat().st_size > 10_000
    assert "paired against" in result.output
    # Piped output keeps full names (a table cut at 80 columns used to truncate them).
    assert str(checkpoints[1]) in result.output
