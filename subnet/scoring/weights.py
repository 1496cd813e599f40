"""From win rates to weights, and the smoothing across rounds.

Softmax with a low temperature (subnet 9's choice) gives nearly everything to the best model
while still ranking the rest; a power of the win rate (w ~ win_rate ** power) is the gentler
alternative. Either way a key with win rate 0 (a copy, a failed model, or a model that lost
every pair) gets exactly 0 as long as some key has a positive win rate; this is what keeps a
copy from earning anything through the softmax's exp(0) floor.

Nothing here returns NaN: empty or all-zero input gives all zeros (the caller must not set
all-zero weights on chain; it keeps its previous ones instead).
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

METHODS = ("softmax", "power")
DROP_BELOW = 1e-9  # weights this small are dust: they only bloat the chain extrinsic


def _check_win_rates(win_rates: Mapping[str, float]) -> dict[str, float]:
    clean = {}
    for key, rate in win_rates.items():
        r = float(rate)
        if not (0.0 <= r <= 1.0):  # also rejects NaN
            raise ValueError(f"win rate of {key!r} must be in [0, 1], got {rate!r}")
        clean[key] = r
    return clean


def weights_from_win_rates(
    win_rates: Mapping[str, float],
    temperature: float = 0.01,
    method: str = "softmax",
    power: float = 4.0,
) -> dict[str, float]:
    """Normalised weights (summing to 1, or all 0) for every key of `win_rates`."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "softmax" and not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if method == "power" and not (power > 0 and math.isfinite(power)):
        raise ValueError(f"power must be a positive number, got {power!r}")
    rates = _check_win_rates(win_rates)
    keys = sorted(rates)
    weights = {k: 0.0 for k in keys}
    positive = [k for k in keys if rates[k] > 0]
    if not positive:
        return weights
    r = np.array([rates[k] for k in positive])
    if method == "softmax":
        raw = np.exp((r - r.max()) / temperature)  # shifted by the max: never overflows, max term is 1
    else:
        raw = (r / r.max()) ** power  # scaled by the max: never underflows to all zeros
    raw /= raw.sum()
    weights.update({k: float(w) for k, w in zip(positive, raw)})
    return weights


def _clean_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Non-finite or negative entries count as 0: a corrupt stored EMA must not take the validator down."""
    out = {}
    for key, w in weights.items():
        w = float(w)
        out[key] = w if math.isfinite(w) and w > 0 else 0.0
    return out


def ema_update(previous: Mapping[str, float], current: Mapping[str, float], alpha: float = 0.5) -> dict[str, float]:
    """alpha * current + (1 - alpha) * previous over the union of keys (missing = 0), renormalised.

    Keys whose weight falls below 1e-9 are dropped, so a model that stopped winning fades out
    of the table instead of lingering forever. Returns {} when nothing positive is left.
    """
    a = float(alpha)
    if not (0.0 <= a <= 1.0):
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    prev, cur = _clean_weights(previous), _clean_weights(current)
    scale = max([*prev.values(), *cur.values(), 0.0])
    if scale <= 0:
        return {}
    blended = {  # divided by the largest entry first, so huge stored values cannot overflow
        k: a * (cur.get(k, 0.0) / scale) + (1.0 - a) * (prev.get(k, 0.0) / scale)
        for k in sorted(set(prev) | set(cur))
    }
    total = math.fsum(blended.values())
    if total <= 0:
        return {}
    kept = {k: w for k, w in blended.items() if w / total >= DROP_BELOW}
    total = math.fsum(kept.values())
    return {k: w / total for k, w in kept.items()}
