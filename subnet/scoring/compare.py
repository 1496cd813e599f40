"""Does a later model beat an earlier one on the same documents? The paired test.

Both models are scored on the same documents, so most of the spread of per-document losses
(how hard each document is: std about 18% of the mean) is shared and cancels in the
per-document difference. We test

    d_i = later_i - (1 - eps) * earlier_i        over documents i scored by both,

and the later model wins iff the two-sided `confidence` t interval of mean(d) lies entirely
below 0. That implies mean(later) < (1 - eps) * mean(earlier) on those documents, and says the
margin is not luck of the draw. With a two-sided 95% interval a false win has probability at
most 2.5% (one tail), which errs on the side of the incumbent.

Why t is enough: d_i are independent given the round's documents, and rounds use hundreds to
thousands of them, where the central limit theorem makes mean(d) close to normal even though
losses are skewed (from about n >= 100 the t and bootstrap intervals agree to a few percent of
their width). A paired bootstrap of mean(d) would be the assumption-free alternative, at
about 1,000 times the cost and with a random seed every validator would have to share.

Failed documents (NaN or inf loss, e.g. a numerical blow-up) are not silently dropped in a way
that could help the failing model: the model with strictly more failed documents loses the pair
outright ("non-finite losses lose, always"). With equal failure counts the documents where
either failed are left out of the pairing and the test runs on the rest. Ties (no evidence
either way, including no finite pairs at all) go to the earlier model: the later one must prove
itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from subnet.competitions import AdvantageSchedule
from subnet.scoring.advantage import advantage
from subnet.scoring.stats import mean_interval


@dataclass(frozen=True)
class Comparison:
    """The verdict of one pair, with its evidence. Means are over the documents both scored.

    `diff_mean` is mean(later - (1 - eps) * earlier) and [ci_low, ci_high] its interval; negative
    favours the later model. `reason` says in words why the verdict went the way it did.
    """

    earlier_mean: float
    later_mean: float
    eps: float
    diff_mean: float
    stderr: float
    ci_low: float
    ci_high: float
    n: int
    later_wins: bool
    earlier_failed: int = 0
    later_failed: int = 0
    confidence: float = 0.95
    reason: str = ""


def _loss_vector(name: str, values) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-document losses, got shape {x.shape}")
    return x


def paired_compare(
    earlier_losses,
    later_losses,
    earlier_age_blocks: float,
    schedule: AdvantageSchedule,
    confidence: float = 0.95,
) -> Comparison:
    """Judge a later model against an earlier one on the same documents (NaN = failed document)."""
    earlier = _loss_vector("earlier_losses", earlier_losses)
    later = _loss_vector("later_losses", later_losses)
    if earlier.shape != later.shape:
        raise ValueError(
            f"earlier_losses and later_losses must cover the same documents, got {earlier.size} and {later.size}"
        )
    eps = advantage(earlier_age_blocks, schedule)
    earlier_ok, later_ok = np.isfinite(earlier), np.isfinite(later)
    earlier_failed = int(earlier.size - earlier_ok.sum())
    later_failed = int(later.size - later_ok.sum())
    both = earlier_ok & later_ok
    e, lt = earlier[both], later[both]
    with np.errstate(over="ignore", invalid="ignore"):
        diffs = lt - (1.0 - eps) * e
        earlier_mean = float(np.mean(e)) if e.size else math.nan
        later_mean = float(np.mean(lt)) if lt.size else math.nan
    interval = mean_interval(diffs, confidence)

    if later_failed > earlier_failed:
        later_wins, reason = False, f"later model failed more documents ({later_failed} vs {earlier_failed})"
    elif earlier_failed > later_failed:
        later_wins, reason = True, f"earlier model failed more documents ({earlier_failed} vs {later_failed})"
    elif interval.n < 2:
        later_wins, reason = False, f"only {interval.n} document(s) scored by both; the earlier model keeps the pair"
    elif interval.high < 0:
        later_wins, reason = True, "later loss is significantly below (1 - eps) x earlier loss"
    elif interval.mean < 0:
        later_wins, reason = False, "later loss is below (1 - eps) x earlier loss, but not significantly"
    else:
        later_wins, reason = False, "later loss is not below (1 - eps) x earlier loss"
    return Comparison(
        earlier_mean=earlier_mean,
        later_mean=later_mean,
        eps=eps,
        diff_mean=interval.mean,
        stderr=interval.stderr,
        ci_low=interval.low,
        ci_high=interval.high,
        n=interval.n,
        later_wins=later_wins,
        earlier_failed=earlier_failed,
        later_failed=later_failed,
        confidence=float(confidence),
        reason=reason,
    )
