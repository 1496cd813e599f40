"""The one loss of a competition, its interval, and the paired ratio statistic two models are judged on.

The loss is the total negative log-likelihood over the total predicted tokens of the round's
documents (nats per token): `L = sum_i nll_i / sum_i tokens_i`. A competition may list several
weighted sources; then `L = sum_s w_s * L_s`, each source's own token-weighted loss.

Why token-weighted and not the mean of per-document losses: per-document noise falls with length
(about 2.1% of the loss under 32 tokens, 0.8% at 192-256 tokens), yet a mean of per-document
means gives every document the same weight. The ratio of sums weighs each document by what it
tells us, and it is what "loss per token" means everywhere else.

Why not bits per byte: both models of a competition share its tokenizer, so they predict the
same tokens of the same bytes. The ratio of their bits per byte equals the ratio of their total
NLL, which equals the ratio of their per-token losses: the decision does not depend on the unit.
Nats per token is what the miner's training loop prints, so we report that. A competition with free
tokenizers (each model its own) is the exception: there only the bytes are common to all models, so
its loss is total NLL in bits over total UTF-8 bytes of the same texts (`document_values`).

Documents are the independent units (the round samples them). The comparison statistic is the
log of the loss ratio, `theta = log(L_later / L_earlier)`; its variance comes from the delta
method (each document's influence on the ratio), which a paired bootstrap confirms in the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from subnet.scoring.stats import Interval, _check_confidence, t_quantile

VARIANCE_FLOOR = 1e-24  # keeps a zero-variance round (identical losses) from dividing by zero


@dataclass(frozen=True)
class RatioStat:
    """One round's paired evidence: log(L_later / L_earlier), its delta-method variance, documents used."""

    log_ratio: float
    variance: float
    n: int

    @property
    def ratio(self) -> float:
        return math.exp(self.log_ratio)

    def relative_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Two-sided interval of L_later / L_earlier - 1 (e.g. -0.005: 0.5% lower loss)."""
        if self.n < 2 or not (math.isfinite(self.log_ratio) and math.isfinite(self.variance)):
            return -math.inf, math.inf
        half = t_quantile(_check_confidence(confidence), self.n - 1) * math.sqrt(self.variance)
        return relative(self.log_ratio - half), relative(self.log_ratio + half)


def relative(log_ratio: float) -> float:
    """exp(x) - 1 without overflow: a log ratio past ~709 is an infinitely worse loss, not an error."""
    return math.inf if log_ratio > 700 else math.expm1(log_ratio)


def document_nll(losses) -> np.ndarray:
    """A `DocLosses`' summed NLL per document, NaN where the document failed or predicted nothing."""
    return np.where(np.isnan(losses.per_token()), np.nan, np.asarray(losses.nll_sum, dtype=np.float64))


def document_values(losses, per_byte: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Each document's loss sum and the weight it is divided by: (nats, predicted tokens), or with
    `per_byte` (free tokenizers) (bits, UTF-8 bytes), so models of different tokenizers compare."""
    nll = document_nll(losses)
    if not per_byte:
        return nll, np.asarray(losses.n_tokens, dtype=np.float64)
    return nll / math.log(2), np.asarray(losses.n_bytes, dtype=np.float64)


def _groups(n: int, groups, group_weights) -> tuple[np.ndarray, np.ndarray]:
    """Source index per document and normalised source weights; one source of weight 1 by default."""
    g = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    if g.shape != (n,):
        raise ValueError(f"groups must give one source index per document ({n}), got shape {g.shape}")
    if n and (g.min() < 0):
        raise ValueError("source indices must not be negative")
    k = int(g.max()) + 1 if n else 1
    w = np.ones(k) if group_weights is None else np.asarray(group_weights, dtype=np.float64)
    if w.ndim != 1 or w.size < k:
        raise ValueError(f"need a weight for each of {k} sources, got {w.size}")
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
        raise ValueError(f"source weights must be non-negative with a positive sum, got {w.tolist()}")
    return g, w / w.sum()


def _prepared(nll, tokens, groups, group_weights):
    x = np.asarray(nll, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"losses must be 1-D per-document values, got shape {x.shape}")
    t = np.ones_like(x) if tokens is None else np.asarray(tokens, dtype=np.float64)
    if t.shape != x.shape:
        raise ValueError(f"tokens must match the documents ({x.size}), got shape {t.shape}")
    g, w = _groups(x.size, groups, group_weights)
    return x, t, g, w


def _source_parts(x, t, g, w):
    """Per present source: weight, mask, mean nll per doc, mean tokens per doc. Absent sources drop out."""
    parts = []
    for s in range(w.size):
        mask = g == s
        if w[s] > 0 and mask.any() and t[mask].sum() > 0:
            parts.append((w[s], mask, float(x[mask].mean()), float(t[mask].mean())))
    total = sum(p[0] for p in parts)
    return [(ws / total, m, xm, tm) for ws, m, xm, tm in parts]


def competition_loss(nll, tokens=None, groups=None, group_weights=None, confidence: float = 0.95) -> Interval:
    """The competition's loss over the finite documents, with its delta-method interval.

    `nll` is each document's summed NLL and `tokens` its predicted tokens (None: each document
    weighs 1, so `nll` are per-document losses). NaN/inf documents are left out.
    """
    confidence = _check_confidence(confidence)
    x, t, g, w = _prepared(nll, tokens, groups, group_weights)
    ok = np.isfinite(x) & (t > 0)
    x, t, g = x[ok], t[ok], g[ok]
    n = int(x.size)
    parts = _source_parts(x, t, g, w)
    if not parts:
        return Interval(math.nan, math.inf, -math.inf, math.inf, 0)
    loss = sum(ws * xm / tm for ws, _, xm, tm in parts)
    var = 0.0
    for ws, mask, xm, tm in parts:
        k = int(mask.sum())
        if k < 2:
            return Interval(float(loss), math.inf, -math.inf, math.inf, n)
        influence = ws * (x[mask] - (xm / tm) * t[mask]) / tm  # d loss / d (one document of this source)
        var += float(np.var(influence, ddof=1)) / k
    stderr = math.sqrt(var)
    half = t_quantile(confidence, max(1, n - 1)) * stderr
    return Interval(float(loss), stderr, float(loss) - half, float(loss) + half, n)


def paired_log_ratio(earlier_nll, later_nll, tokens=None, groups=None, group_weights=None) -> RatioStat:
    """log(L_later / L_earlier) on the documents both scored (finite in both), and its variance.

    Delta method: each document i of source s moves log L_m by w_s (x_mi - l_ms t_i) / (T_s L_m n_s),
    so the variance of the log ratio is the sum over sources of var(later influence - earlier
    influence) / n_s. With one source this is var(b_i / l_b - a_i / l_a) / (n T^2).
    """
    a, t, g, w = _prepared(earlier_nll, tokens, groups, group_weights)
    b = np.asarray(later_nll, dtype=np.float64)
    if b.shape != a.shape:
        raise ValueError(f"both models must cover the same documents, got {a.size} and {b.size}")
    ok = np.isfinite(a) & np.isfinite(b) & (t > 0)
    a, b, t, g = a[ok], b[ok], t[ok], g[ok]
    n = int(a.size)
    parts = _source_parts(a, t, g, w)
    if n < 2 or not parts:
        return RatioStat(math.nan, math.inf, n)
    loss_a = sum(ws * am / tm for ws, _, am, tm in parts)
    loss_b = sum(ws * float(b[m].mean()) / tm for ws, m, _, tm in parts)
    if not (loss_a > 0 and loss_b > 0):
        return RatioStat(math.nan, math.inf, n)
    var = 0.0
    for ws, mask, am, tm in parts:
        k = int(mask.sum())
        if k < 2:
            return RatioStat(math.log(loss_b / loss_a), math.inf, n)
        bm = float(b[mask].mean())
        infl = ws / tm * ((b[mask] - bm / tm * t[mask]) / loss_b - (a[mask] - am / tm * t[mask]) / loss_a)
        var += float(np.var(infl, ddof=1)) / k
    return RatioStat(math.log(loss_b / loss_a), max(var, VARIANCE_FLOOR), n)
