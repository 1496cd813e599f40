"""Yuma consensus as the runtime's epoch computes it: consensus, clipping, validator trust, incentive.

A validator's income follows its vtrust: the share of its weight that survives clipping to the
stake-weighted consensus. Read from opentensor/subtensor (commit 14bc6f9f),
`pallets/subtensor/src/epoch/run_epoch.rs` (`epoch_dense_mechanism`) and `epoch/math.rs`:

1. active stake S: stake of permitted validators, normalised to sum 1 (`inplace_normalize`);
2. weights W: rows of non-permitted validators masked, self-weights masked (`inplace_mask_diag`),
   each row normalised to sum 1 (`inplace_row_normalize`);
3. consensus C_j = `weighted_median_col(S, W, kappa)`: per column, the value c such that the stake
   of validators weighting j strictly below c is at most 1 - kappa while the stake at or below c
   exceeds it (kappa = 0.5 by default: the stake-weighted median);
4. clipped weights min(W_ij, C_j) (`inplace_col_clip`); validator trust T_i = sum_j of them
   (`row_sum`): the vtrust;
5. ranks R = clipped^T S, normalised: the miners' incentive.

Floats here, where the runtime uses I32F32 fixed point: agreement to ~1e-9, plenty for the
simulator, the devnet and an operator's agreement gauge. Bonds and dividends are left out: vtrust
and incentive are what decide whether validators agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_KAPPA = 32_767 / 65_535  # the runtime's default, stored as u16


@dataclass(frozen=True)
class YumaResult:
    consensus: np.ndarray  # per uid
    validator_trust: np.ndarray  # per uid (0 for non-validators)
    incentive: np.ndarray  # per uid, sums to 1 (or all 0)


def weighted_median(stake: np.ndarray, score: np.ndarray, kappa: float = DEFAULT_KAPPA) -> float:
    """The column's consensus: the score where the cumulative stake from below passes 1 - kappa."""
    keep = stake > 0
    if not keep.any():
        return 0.0
    s, x = stake[keep] / stake[keep].sum(), score[keep]
    minority = 1.0 - kappa
    order = np.argsort(x, kind="stable")
    xs, cum = x[order], np.cumsum(s[order])
    for value in np.unique(xs):
        if cum[xs <= value][-1] > minority + 1e-12:
            return float(value)
    return float(xs[-1])


def yuma(stakes, weights, permits=None, kappa: float = DEFAULT_KAPPA) -> YumaResult:
    """`weights[i][j]`: validator i's (unnormalised) weight on uid j; `stakes[i]` its stake."""
    w = np.array(weights, dtype=np.float64, copy=True)
    n = w.shape[0]
    if w.ndim != 2 or w.shape[1] != n:
        raise ValueError(f"weights must be a square uid x uid matrix, got shape {w.shape}")
    stake = np.asarray(stakes, dtype=np.float64).copy()
    permit = np.ones(n, dtype=bool) if permits is None else np.asarray(permits, dtype=bool)
    stake[~permit] = 0.0
    stake = stake / stake.sum() if stake.sum() > 0 else stake
    w[~permit, :] = 0.0
    np.fill_diagonal(w, 0.0)
    w = np.clip(w, 0.0, None)
    sums = w.sum(axis=1, keepdims=True)
    w = np.divide(w, sums, out=np.zeros_like(w), where=sums > 0)
    consensus = np.array([weighted_median(stake, w[:, j], kappa) for j in range(n)])
    clipped = np.minimum(w, consensus[None, :])
    trust = clipped.sum(axis=1)
    ranks = clipped.T @ stake
    incentive = ranks / ranks.sum() if ranks.sum() > 0 else ranks
    return YumaResult(consensus, trust, incentive)


def agreement(own: dict[int, float], consensus: dict[int, float]) -> float:
    """The vtrust a weight vector would get against a consensus: sum_j min(w_j, C_j), w normalised."""
    total = sum(v for v in own.values() if v > 0)
    if total <= 0:
        return 0.0
    return float(sum(min(v / total, consensus.get(uid, 0.0)) for uid, v in own.items() if v > 0))
