"""Confidence intervals of a mean: the error bars every score and comparison carries.

The interval is Student's t over the finite values. Per-document losses are independent draws
given the round's documents, and at the sizes a round uses (hundreds to thousands of documents)
the central limit theorem makes the mean close to normal even though single losses are skewed;
t rather than z keeps small samples (the miner's quick checks) honest.

The t quantile comes from scipy when it is installed (`scipy.special.stdtrit`), otherwise from
Hill's algorithm (ACM 396), which agrees with it to better than 1e-4 relative for every df >= 1
at the confidences we use; the tests check the two against each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class Interval:
    """Mean of the finite values, its standard error, and the two-sided interval [low, high].

    With fewer than two finite values the error is unknown: `stderr` is inf and the interval
    is (-inf, inf); `mean` is NaN when there are no finite values at all.
    """

    mean: float
    stderr: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def _check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not (0.0 < c < 1.0):
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    return c


@lru_cache(maxsize=4096)
def t_quantile(confidence: float, df: int) -> float:
    """The two-sided Student t multiplier: P(|T_df| <= q) = confidence."""
    confidence = _check_confidence(confidence)
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    try:
        from scipy.special import stdtrit
    except ImportError:  # pragma: no cover - exercised through _hill_t_quantile directly in tests
        return _hill_t_quantile(1.0 - confidence, df)
    return float(stdtrit(df, 0.5 + confidence / 2))


def _hill_t_quantile(two_sided_p: float, df: int) -> float:
    """Hill (1970), ACM algorithm 396: q with P(|T_df| > q) = two_sided_p. Pure Python fallback."""
    p, n = float(two_sided_p), int(df)
    if n == 1:
        half = p * math.pi / 2
        return math.cos(half) / math.sin(half)
    if n == 2:
        return math.sqrt(2.0 / (p * (2.0 - p)) - 2.0)
    a = 1.0 / (n - 0.5)
    b = 48.0 / (a * a)
    c = ((20700.0 * a / b - 98.0) * a - 16.0) * a + 96.36
    d = ((94.5 / (b + c) - 3.0) / b + 1.0) * math.sqrt(a * math.pi / 2) * n
    x = d * p
    y = x ** (2.0 / n)
    if y > 0.05 + a:
        x = NormalDist().inv_cdf(0.5 * p)
        y = x * x
        if n < 5:
            c += 0.3 * (n - 4.5) * (x + 0.6)
        c = (((0.05 * d * x - 5.0) * x - 7.0) * x - 2.0) * x + b + c
        y = (((((0.4 * y + 6.3) * y + 36.0) * y + 94.5) / c - y - 3.0) / b + 1.0) * x
        y = math.expm1(a * y * y)
    else:
        y = ((1.0 / (((n + 6.0) / (n * y) - 0.089 * d - 0.822) * (n + 2.0) * 3.0) + 0.5 / (n + 4.0)) * y - 1.0) * (
            n + 1.0
        ) / (n + 2.0) + 1.0 / y
    return math.sqrt(n * y)


def mean_interval(values, confidence: float = 0.95) -> Interval:
    """Student t interval of the mean over the finite entries of `values` (NaN/inf are skipped)."""
    confidence = _check_confidence(confidence)
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return Interval(math.nan, math.inf, -math.inf, math.inf, 0)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = float(np.mean(x))
        if n == 1:
            return Interval(mean, math.inf, -math.inf, math.inf, 1)
        stderr = float(np.std(x, ddof=1)) / math.sqrt(n)
    if not (math.isfinite(mean) and math.isfinite(stderr)):
        # Finite values so large that their sums overflow: the mean is not knowable in float64.
        return Interval(mean, math.inf, -math.inf, math.inf, n)
    half = t_quantile(confidence, n - 1) * stderr
    return Interval(mean, stderr, mean - half, mean + half, n)
