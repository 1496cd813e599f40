"""Evidence accumulated across rounds: an anytime-valid confidence sequence for a pair's loss ratio.

Each round gives an estimate theta_r of theta = log(L_later / L_earlier) with variance v_r (see
`loss.py`). The two models do not change while their pair's evidence lives, so theta is fixed
and the rounds' estimates can be pooled: S = sum theta_r / v_r, I = sum 1 / v_r (the information).
S - I * theta is then a sum of independent, nearly normal increments with variance I, and
Robbins' normal-mixture boundary

    |S - I * theta| <= sqrt((I + rho) * (log((I + rho) / rho) + 2 * log(1 / alpha)))

holds at every round at once with probability at least 1 - alpha (Ville's inequality on the
mixture martingale), over an unbounded number of rounds; alpha = 1 - confidence. The increments
are symmetric about theta, so the upper side alone misses with probability about alpha / 2
(2.5% at the default 95%). Peeking every round is therefore free: a later model wins when the
upper end of the sequence for theta is below log(1 - eps) for the advantage eps of this round.
If the later model is really equal or worse (theta >= 0 >= log(1 - eps)), that needs the upper
end to miss theta, which happens with probability at most about alpha / 2 over the whole
history, whatever eps did meanwhile.

`rho` sets where the boundary is tightest (narrowest relative to a fixed-sample interval). A
fixed rho in absolute units would suit one noise level only: a competition scoring 160 noisy
documents a round gathers a millionth of the information of one scoring 2,400 close checkpoints,
and with rho far above the information the sequence is uselessly wide. So rho is fixed once per
pair, at its first usable round, as `design_rounds` times that round's information (1 / v_1), and
never changed after: the boundary is tightest around `design_rounds` rounds of evidence, at any
noise level. Only the first round's *variance* sets it, not its estimate; for normal increments
the two are independent, so the sequence keeps its level (the seeded simulation test checks it).
With 2,400 documents a round of close checkpoints, 3 rounds put the tight spot where a margin of
about 0.05% beyond the advantage is decided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from subnet.scoring.loss import RatioStat, relative

DEFAULT_DESIGN_ROUNDS = 3.0


def boundary(information: float, rho: float, alpha: float) -> float:
    """Half-width in S-units of the normal-mixture confidence sequence at information I."""
    i = max(0.0, float(information))
    return math.sqrt((i + rho) * (math.log((i + rho) / rho) + 2.0 * math.log(1.0 / alpha)))


def alpha_of(confidence: float) -> float:
    """The sequence's level: it misses theta at some round with probability at most 1 - confidence."""
    c = float(confidence)
    if not (0.0 < c < 1.0):
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    return 1.0 - c


@dataclass(frozen=True)
class PairEvidence:
    """Pooled evidence of one (earlier, later) pair: S = sum theta_r / v_r, I = sum 1 / v_r, rounds, rho."""

    weighted_sum: float = 0.0
    information: float = 0.0
    rounds: int = 0
    rho: float = 0.0  # the mixture's precision, fixed at the first usable round (0: none yet)

    def add(self, stat: RatioStat, design_rounds: float = DEFAULT_DESIGN_ROUNDS) -> "PairEvidence":
        """This evidence plus one round's statistic; rounds without a usable statistic add nothing."""
        if stat.n < 2 or not (math.isfinite(stat.log_ratio) and math.isfinite(stat.variance) and stat.variance > 0):
            return self
        if not (design_rounds > 0 and math.isfinite(design_rounds)):
            raise ValueError(f"design_rounds must be a positive number, got {design_rounds!r}")
        rho = self.rho if self.rho > 0 else float(design_rounds) / stat.variance
        return PairEvidence(self.weighted_sum + stat.log_ratio / stat.variance,
                            self.information + 1.0 / stat.variance, self.rounds + 1, rho)

    @property
    def estimate(self) -> float:
        """Pooled log ratio (NaN without evidence)."""
        return self.weighted_sum / self.information if self.information > 0 else math.nan

    def log_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """The confidence sequence for theta = log(L_later / L_earlier) after these rounds."""
        if not (self.information > 0 and math.isfinite(self.information) and self.rho > 0):
            return -math.inf, math.inf
        alpha = alpha_of(confidence)
        half = boundary(self.information, self.rho, alpha) / self.information
        return self.estimate - half, self.estimate + half

    def relative_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """The same sequence for L_later / L_earlier - 1 (negative: the later model's loss is lower)."""
        low, high = self.log_interval(confidence)
        return relative(low), relative(high)

    def beats(self, eps: float, confidence: float = 0.95) -> bool:
        """True when the whole sequence says L_later < (1 - eps) * L_earlier."""
        _, high = self.log_interval(confidence)
        return high < math.log1p(-float(eps))
