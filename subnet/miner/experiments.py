"""Which of a miner's experiments really helped? Paired tests on shared documents, and tests across seeds.

Two kinds of noise decide whether an intervention (a schedule, an optimizer, a data mix) is real:
- *Which documents were scored.* Every model is scored on the same held-out documents, so the
  per-document differences cancel the documents' difficulty: each pair gets a paired interval,
  and the p-values of all pairs against the baseline are corrected for their number (Holm), so
  testing ten ideas does not make one look good by luck.
- *Which run it was.* Two seeds of one configuration differ by more than the paired interval of
  one pair: the effect of an intervention is only believable against the between-run spread.
  With several seeds per configuration we test the configurations' mean losses across runs
  (Welch's t), and bootstrap that p-value over the runs, so a miner sees how stable it is.

The loss is one number per model: total negative log-likelihood over total predicted tokens of
the documents (per-token loss, as the validator reports it). Its paired difference is a ratio
of two sums over the same documents; its standard error comes from the delta method, with the
documents as the independent units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from subnet.eval.types import DocLosses


@dataclass(frozen=True)
class PairedResult:
    name: str
    baseline: str
    diff: float  # loss(name) - loss(baseline), per token; negative = better than the baseline
    stderr: float
    ci_low: float
    ci_high: float
    p_value: float  # two-sided, uncorrected
    p_holm: float = math.nan  # Holm-corrected over all pairs against the baseline
    n_documents: int = 0


@dataclass(frozen=True)
class GroupResult:
    """A configuration run with several seeds, against the baseline configuration's runs."""

    name: str
    runs: tuple[str, ...]
    losses: tuple[float, ...]  # each run's loss on the held-out documents
    mean: float
    spread: float  # standard deviation between runs
    diff: float = math.nan  # mean(this) - mean(baseline group)
    p_value: float = math.nan  # Welch's t across runs
    p_bootstrap: tuple[float, float, float] = (math.nan, math.nan, math.nan)  # 5%, 50%, 95% of bootstrapped p
    baseline: str | None = None


@dataclass
class ExperimentReport:
    baseline: str
    n_documents: int
    losses: dict[str, float]
    pairs: list[PairedResult] = field(default_factory=list)
    groups: list[GroupResult] = field(default_factory=list)
    confidence: float = 0.95


def token_loss(losses: DocLosses) -> float:
    """The competition's one loss (subnet.scoring.loss): total NLL over total predicted tokens."""
    from subnet.scoring.loss import competition_loss, document_nll

    return float(competition_loss(document_nll(losses), losses.n_tokens).mean)


def paired_ratio_difference(a: DocLosses, b: DocLosses, confidence: float = 0.95) -> tuple[float, float, float, float,
                                                                                            float, int]:
    """loss(a) - loss(b) per token on the documents both scored: (diff, stderr, low, high, p, n).

    With d_i = nll_a_i - nll_b_i and t_i the predicted tokens, the difference is R = sum d / sum t.
    Delta method: Var(R) ~ Var(d_i - R t_i) / (n mean(t)^2); a t interval with n - 1 degrees of freedom.
    """
    if len(a) != len(b) or not np.array_equal(a.n_tokens, b.n_tokens):
        raise ValueError("paired comparison needs the same documents with the same tokenization")
    ok = np.isfinite(a.nll_sum) & np.isfinite(b.nll_sum) & (a.n_tokens > 0)
    d, t = (a.nll_sum - b.nll_sum)[ok], a.n_tokens[ok].astype(np.float64)
    n = int(ok.sum())
    if n < 2:
        return math.nan, math.inf, -math.inf, math.inf, math.nan, n
    ratio = d.sum() / t.sum()
    residual = d - ratio * t
    stderr = float(np.sqrt(residual.var(ddof=1) / n) / t.mean())
    if stderr == 0:
        return float(ratio), 0.0, float(ratio), float(ratio), (1.0 if ratio == 0 else 0.0), n
    q = sps.t.ppf(0.5 + confidence / 2, n - 1)
    p = float(2 * sps.t.sf(abs(ratio) / stderr, n - 1))
    return float(ratio), stderr, float(ratio - q * stderr), float(ratio + q * stderr), p, n


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: controls the family-wise error rate for any dependence between tests."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [math.nan] * m
    running = 0.0
    for rank, i in enumerate(order):
        if math.isnan(p_values[i]):
            continue
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def welch_p(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if np.var(a) == 0 and np.var(b) == 0:
        return 1.0 if np.mean(a) == np.mean(b) else 0.0
    return float(sps.ttest_ind(a, b, equal_var=False).pvalue)


def bootstrap_p(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """How stable is the p-value? Resample the runs of each group with replacement and recompute it."""
    if len(a) < 2 or len(b) < 2:
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    ps = np.array([welch_p(rng.choice(a, len(a)), rng.choice(b, len(b))) for _ in range(n_boot)])
    ps = ps[np.isfinite(ps)]
    if not len(ps):
        return (math.nan, math.nan, math.nan)
    return tuple(float(x) for x in np.quantile(ps, [0.05, 0.5, 0.95]))


def analyse(scored: dict[str, DocLosses], baseline: str, groups: dict[str, list[str]] | None = None,
            confidence: float = 0.95) -> ExperimentReport:
    """Every model against the baseline (paired, Holm-corrected), and groups of seeds against the baseline's group."""
    if baseline not in scored:
        raise ValueError(f"baseline {baseline!r} is not among the compared models {sorted(scored)}")
    n_docs = len(scored[baseline])
    report = ExperimentReport(baseline, n_docs, {k: token_loss(v) for k, v in scored.items()},
                              confidence=confidence)
    raw = []
    for name in scored:
        if name == baseline:
            continue
        diff, se, low, high, p, n = paired_ratio_difference(scored[name], scored[baseline], confidence)
        raw.append(PairedResult(name, baseline, diff, se, low, high, p, n_documents=n))
    adjusted = holm([r.p_value for r in raw])
    report.pairs = [PairedResult(**{**r.__dict__, "p_holm": q}) for r, q in zip(raw, adjusted)]
    groups = {g: members for g, members in (groups or {}).items() if len(members) >= 2}
    base_group = next((g for g, members in groups.items() if baseline in members), None)
    base_losses = np.array([report.losses[m] for m in groups[base_group]]) if base_group else None
    for g, members in groups.items():
        losses = np.array([report.losses[m] for m in members])
        result = GroupResult(g, tuple(members), tuple(float(x) for x in losses), float(losses.mean()),
                             float(losses.std(ddof=1)))
        if base_losses is not None and g != base_group:
            result = GroupResult(**{**result.__dict__, "diff": float(losses.mean() - base_losses.mean()),
                                    "p_value": welch_p(losses, base_losses),
                                    "p_bootstrap": bootstrap_p(losses, base_losses), "baseline": base_group})
        report.groups.append(result)
    return report
