"""The one loss definition and the paired ratio statistic: token weighting, sources, delta method vs bootstrap."""

import math

import numpy as np
import pytest

from subnet.eval.types import STATUS_FAILED, STATUS_OK, DocLosses
from subnet.scoring.loss import competition_loss, document_nll, paired_log_ratio


def documents(n: int, seed: int):
    """Token counts with a long tail, and an incumbent's summed NLL per document (per-token loss ~2.2)."""
    rng = np.random.default_rng(seed)
    tokens = np.clip(np.round(rng.lognormal(math.log(200), 1.0, n)), 4, 4096)
    per_token = 2.2 * rng.lognormal(0, 0.18, n)
    return per_token * tokens, tokens, rng


def later_of(nll, tokens, rng, gain=0.002, k=0.06):
    """A later model: `gain` lower loss, per-document noise falling with length (as real pairs show)."""
    sd = k * tokens ** -0.366
    return nll * (1 - gain) * (1 + sd * rng.standard_normal(nll.size))


def test_loss_is_total_nll_over_total_tokens_not_a_mean_of_document_means():
    nll = np.array([10.0, 300.0])
    tokens = np.array([2.0, 100.0])  # per-document losses 5.0 and 3.0
    iv = competition_loss(nll, tokens)
    assert iv.mean == pytest.approx(310 / 102)
    assert iv.mean != pytest.approx(4.0)
    assert competition_loss(nll / tokens).mean == pytest.approx(4.0)  # without tokens each document weighs 1


def test_failed_documents_are_left_out_of_the_loss():
    losses = DocLosses(np.array([10.0, 20.0, 30.0]), np.array([5, 10, 10]), np.array([20, 40, 40]),
                       np.array([STATUS_OK, STATUS_FAILED, STATUS_OK], dtype=np.int8))
    nll = document_nll(losses)
    assert np.isnan(nll[1]) and nll[0] == 10.0
    assert competition_loss(nll, losses.n_tokens).mean == pytest.approx(40 / 15)


def test_loss_interval_matches_a_bootstrap_of_documents():
    nll, tokens, rng = documents(1_500, seed=1)
    iv = competition_loss(nll, tokens)
    idx = rng.integers(0, nll.size, size=(2_000, nll.size))
    boot = nll[idx].sum(axis=1) / tokens[idx].sum(axis=1)
    assert iv.stderr == pytest.approx(boot.std(ddof=1), rel=0.1)


def test_delta_method_interval_of_the_ratio_matches_a_paired_bootstrap():
    nll, tokens, rng = documents(2_000, seed=2)
    later = later_of(nll, tokens, rng)
    stat = paired_log_ratio(nll, later, tokens)
    assert stat.log_ratio == pytest.approx(math.log(later.sum() / nll.sum()))
    idx = rng.integers(0, nll.size, size=(2_000, nll.size))
    boot = np.log(later[idx].sum(axis=1) / nll[idx].sum(axis=1))  # documents resampled in pairs
    assert math.sqrt(stat.variance) == pytest.approx(boot.std(ddof=1), rel=0.1)
    low, high = stat.relative_interval(0.95)
    b_low, b_high = np.expm1(np.quantile(boot, [0.025, 0.975]))
    assert low == pytest.approx(b_low, abs=0.15 * (high - low))
    assert high == pytest.approx(b_high, abs=0.15 * (high - low))


def test_token_weighting_has_less_variance_than_a_mean_of_document_means():
    """Per-document noise falls with length: weighing by tokens uses that (issue 22: ~1.9x on real pairs)."""
    nll, tokens, rng = documents(3_000, seed=3)
    later = later_of(nll, tokens, rng)
    weighted = paired_log_ratio(nll, later, tokens).variance
    per_document = paired_log_ratio(nll / tokens, later / tokens).variance
    assert per_document > 1.3 * weighted


def test_sources_combine_with_their_weights():
    nll, tokens, _ = documents(1_000, seed=4)
    groups = np.repeat([0, 1], 500)
    nll[500:] *= 0.5  # the second source (say, code) has half the loss
    loss0, loss1 = nll[:500].sum() / tokens[:500].sum(), nll[500:].sum() / tokens[500:].sum()
    iv = competition_loss(nll, tokens, groups, [3.0, 1.0])
    assert iv.mean == pytest.approx(0.75 * loss0 + 0.25 * loss1)
    later = nll.copy()
    later[500:] *= 0.9  # 10% better on the second source only
    stat = paired_log_ratio(nll, later, tokens, groups, [3.0, 1.0])
    expected = (0.75 * loss0 + 0.25 * 0.9 * loss1) / (0.75 * loss0 + 0.25 * loss1)
    assert stat.ratio == pytest.approx(expected)
    # A source with no documents this round drops out; the other keeps its full weight.
    alone = paired_log_ratio(nll[500:], later[500:], tokens[500:], np.ones(500, dtype=int), [3.0, 1.0])
    assert alone.ratio == pytest.approx(0.9)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="same documents"):
        paired_log_ratio(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="tokens"):
        competition_loss(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="weight"):
        competition_loss(np.ones(3), None, [0, 1, 2], [1.0, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        competition_loss(np.ones(2), None, [0, 1], [1.0, -1.0])


def test_too_few_documents_give_no_interval():
    assert competition_loss(np.array([np.nan, np.nan])).n == 0
    stat = paired_log_ratio(np.array([1.0]), np.array([0.5]))
    assert stat.n == 1 and stat.relative_interval() == (-math.inf, math.inf)
