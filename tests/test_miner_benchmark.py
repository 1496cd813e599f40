"""The miner's benchmark: the validator's verdict, intervals, and the paired-vs-unpaired gap."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from subnet.competitions import AdvantageSchedule
from subnet.miner.benchmark import WEEK_BLOCKS, compare_losses
from subnet.commands.miner_commands import app
from tests.miner_run import trained_run

SCHEDULE = AdvantageSchedule(eps0=0.004, half_life_blocks=50_400.0, floor=0.0, mode="age")
EARNED = AdvantageSchedule(eps0=0.004, half_life_blocks=50_400.0, mode="earned", cap=0.01, min_earned=0.0005)
REQUIRED_KEYS = {
    "candidate_mean_loss", "incumbent_mean_loss", "paired_diff", "paired_ci_low", "paired_ci_high",
    "unpaired_ci_low", "unpaired_ci_high", "advantage_now", "verdict", "n_documents", "width_ratio",
}


def losses_pair(relative_gain: float, noise: float = 1e-4, n: int = 400, seed: int = 0):
    """Incumbent losses with the spread of real documents; the candidate better by `relative_gain`."""
    rng = np.random.default_rng(seed)
    incumbent = rng.normal(2.2, 0.4, n).clip(0.5)
    jitter = rng.normal(0, noise, n)
    candidate = incumbent * (1 - relative_gain) + (jitter - jitter.mean())  # mean gain exactly as asked
    return candidate, incumbent


def test_clearly_better_candidate_would_win():
    cand, inc = losses_pair(0.02)
    r = compare_losses(cand, inc, 1000, SCHEDULE, incumbent_block=500)
    assert r.verdict.code == "win" and r.verdict.text == "would win"
    assert r.comparison.later_wins
    assert r.paired.high < 0 and r.paired.low <= r.paired.mean <= r.paired.high
    assert r.advantage_week == pytest.approx(r.advantage_now / 2, rel=1e-3)  # half-life of one week


def test_small_gain_wins_once_the_advantage_has_decayed_enough():
    cand, inc = losses_pair(0.002, noise=1e-5)  # 0.2% better; the incumbent holds 0.4% when new
    r = compare_losses(cand, inc, 0, SCHEDULE, incumbent_block=10_000)
    v = r.verdict
    assert v.code == "win_later" and not r.comparison.later_wins
    assert 0.0015 < v.win_advantage < 0.002  # just under the 0.2% gain (the interval needs some room)
    # eps halves every week: 0.4% -> 0.2% after one week, so the win is a little after that.
    assert WEEK_BLOCKS < v.win_age_blocks < 1.5 * WEEK_BLOCKS
    assert v.win_block == math.ceil(10_000 + v.win_age_blocks)
    assert f"around block {v.win_block}" in v.text and "would win once the advantage decays to" in v.text
    # One block earlier it does not win yet, at the winning age it does (the bisection's promise).
    from subnet.scoring.compare import paired_compare

    assert paired_compare(inc, cand, v.win_age_blocks, SCHEDULE).later_wins
    assert not paired_compare(inc, cand, v.win_age_blocks - 2, SCHEDULE).later_wins


def test_in_earned_mode_the_verdict_uses_what_the_incumbent_holds_as_the_validator_does():
    from subnet.scoring.windows import fold_pair, window_stat

    cand, inc = losses_pair(0.006, noise=1e-5)  # 0.6% better: beats eps0 (0.4%), not the cap (1%)
    unknown = compare_losses(cand, inc, 0, EARNED, incumbent_block=10_000)
    assert unknown.advantage_now == pytest.approx(0.01) and unknown.verdict.code == "win_later"
    known = compare_losses(cand, inc, 0, EARNED, incumbent_block=10_000, earned_eps=0.002)
    assert known.advantage_now == pytest.approx(0.002) and known.verdict.code == "win"
    # The validator's own test on the same documents, with the same advantage, says the same.
    assert fold_pair([window_stat(0, inc, cand)], lambda w: 0.002).later_wins
    assert not fold_pair([window_stat(0, inc, cand)], lambda w: 0.01).later_wins


def test_worse_candidate_would_not_win_and_noisy_gain_is_not_significant():
    cand, inc = losses_pair(-0.01)
    assert compare_losses(cand, inc, 0, SCHEDULE).verdict.text == "would not win"
    cand, inc = losses_pair(0.001, noise=0.2, n=30)  # better on average, but far inside the noise
    r = compare_losses(cand, inc, 10**9, SCHEDULE)
    assert r.paired.mean < 0 and r.verdict.code == "not_significant" and r.verdict.text == "would not win now"
    floored = AdvantageSchedule(eps0=0.004, half_life_blocks=50_400.0, floor=0.003)
    cand, inc = losses_pair(0.002, noise=1e-5)
    assert compare_losses(cand, inc, 10**9, floored).verdict.code in ("never", "not_significant")


def test_paired_interval_is_much_narrower_than_unpaired_for_correlated_losses():
    cand, inc = losses_pair(0.005, noise=0.004)
    r = compare_losses(cand, inc, 0, SCHEDULE)
    assert r.unpaired_ci_low < r.unpaired_diff < r.unpaired_ci_high
    assert r.unpaired_diff == pytest.approx(r.paired.mean)
    assert r.width_ratio > 20
    d = json.loads(r.to_json())
    assert REQUIRED_KEYS <= set(d)
    with pytest.raises(ValueError, match="equal-length"):
        compare_losses(cand[:-1], inc, 0, SCHEDULE)


def rendered(table) -> str:
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(table)
    return console.export_text()


def test_the_width_ratio_is_worded_the_right_way_round_in_both_directions():
    from subnet.miner.benchmark_report import report_table

    cand, inc = losses_pair(0.005, noise=0.004)
    narrower = compare_losses(cand, inc, 0, SCHEDULE)
    assert narrower.width_ratio > 1
    assert f"paired interval {narrower.width_ratio:.1f}x narrower than unpaired" in rendered(report_table(narrower))
    # Anti-correlated losses (a model good where the other is bad): the paired interval is wider.
    rng = np.random.default_rng(1)
    inc = rng.normal(2.2, 0.4, 400).clip(0.5)
    cand = 2 * inc.mean() - inc + rng.normal(0, 0.01, 400)
    wider = compare_losses(cand, inc, 0, SCHEDULE)
    assert wider.width_ratio < 1
    text = rendered(report_table(wider))
    assert f"paired interval {1 / wider.width_ratio:.1f}x wider than unpaired" in text and "narrower" not in text


def test_the_plot_shows_the_tables_loss_not_the_mean_of_document_losses(tmp_path):
    from subnet.miner.benchmark_report import histogram_labels, interval_curves, plot_report

    rng = np.random.default_rng(2)
    tokens = rng.integers(5, 400, 300).astype(float)  # long documents are easier: the two means differ
    inc_per_token = 3.0 - 0.003 * tokens + rng.normal(0, 0.1, 300)
    cand_per_token = inc_per_token * 0.99
    r = compare_losses(cand_per_token * tokens, inc_per_token * tokens, 0, SCHEDULE, tokens=tokens)
    assert abs(np.mean(r.incumbent_losses) - r.incumbent.mean) > 0.05  # what the old legend showed
    from subnet.miner.benchmark_report import report_table

    [row] = [line for line in rendered(report_table(r)).splitlines() if "incumbent loss (total NLL / total tokens)" in line]
    assert f"{r.incumbent.mean:.5f}" in row
    assert histogram_labels(r) == (f"incumbent: loss {r.incumbent.mean:.5f}", f"candidate: loss {r.candidate.mean:.5f}")
    unpaired, paired = interval_curves(r, np.array([300]))
    assert unpaired[0] == pytest.approx((r.unpaired_ci_high - r.unpaired_ci_low) / 2)
    assert paired[0] == pytest.approx((r.paired.high - r.paired.low) / 2)
    assert plot_report(r, tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_benchmark_cli_on_two_checkpoints_of_one_run(tmp_path):
    result, out = trained_run()
    earlier = out / "checkpoints/step_00000195/model"
    later = out / "checkpoints/step_00000200/model"
    plot = tmp_path / "bench.png"
    run = CliRunner().invoke(app, [
        "benchmark", str(later), "--incumbent", str(earlier), "--incumbent-age-blocks", "7200",
        "--competition", "tiny", "--device", "cpu", "--json", "--plot", str(plot),
    ])
    assert run.exit_code == 0, run.output
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert REQUIRED_KEYS <= set(report)
    assert report["n_documents"] == 160
    paired = report["paired_ci_high"] - report["paired_ci_low"]
    unpaired = report["unpaired_ci_high"] - report["unpaired_ci_low"]
    print(f"\nbenchmark step 200 vs step 195 on {report['n_documents']} docs: "
          f"candidate {report['candidate_mean_loss']:.4f}, incumbent {report['incumbent_mean_loss']:.4f}, "
          f"paired diff {report['paired_diff']:+.5f} [{report['paired_ci_low']:+.5f}, {report['paired_ci_high']:+.5f}] "
          f"width {paired:.5f}; unpaired width {unpaired:.5f}; ratio {unpaired / paired:.1f}x; {report['verdict']}")
    assert unpaired >= 10 * paired
    assert report["width_ratio"] == pytest.approx(unpaired / paired)
    # tiny runs the earned mode: unknown what the incumbent earned, the benchmark assumes the cap.
    assert report["advantage_now"] == pytest.approx(0.01 * 0.5 ** (7200 / 50_400))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Piped, the table is not cut at 80 columns: every row on one line, the full path in the notes.
    assert "validator's test: L_cand / L_inc - 1 (wins below -eps)" in run.output
    assert f"plot: {plot}" in run.output
