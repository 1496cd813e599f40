"""Does a later model beat an earlier one? The paired ratio test, with evidence carried across rounds.

Both models are scored on the same documents, so how hard each document is (std about 18% of
the mean loss) is shared and cancels in the ratio of their losses. Each round gives
theta_r = log(L_later / L_earlier) on the competition's one loss (`loss.py`: total NLL over total
predicted tokens, documents as the independent units, delta-method variance). The round's
estimate joins the pair's earlier rounds in an anytime-valid confidence sequence
(`sequential.py`), and the later model wins when the sequence's upper end is below
log(1 - eps), eps being the earlier model's advantage now: the incumbent's guard. A real margin
wins once enough rounds have accrued; an equal or worse model wins with probability at most
about (1 - confidence) / 2 over any number of rounds.

Failed documents (NaN or inf loss) are not silently dropped in a way that could help the failing
model: the model with strictly more failed documents loses the pair outright ("non-finite losses
lose, always"), and that round adds no evidence. With equal failure counts the documents where
either failed are left out and the test runs on the rest. Ties (no evidence either way,
including no finite pairs at all) go to the earlier model: the later one must prove itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from subnet.competitions import AdvantageSchedule
from subnet.scoring.advantage import advantage
from subnet.scoring.loss import competition_loss, paired_log_ratio
from subnet.scoring.sequential import DEFAULT_DESIGN_ROUNDS, PairEvidence


@dataclass(frozen=True)
class Comparison:
    """The verdict of one pair, with its evidence. Losses are over the documents both scored.

    `diff_mean` is this round's L_later / L_earlier - 1 and [ci_low, ci_high] its delta-method
    interval; [acc_low, acc_high] is the confidence sequence over all `rounds` of the pair's
    evidence, which decides. Negative favours the later model; it wins when acc_high < -eps.
    """

    earlier_mean: float
    later_mean: float
    eps: float
    diff_mean: float
    stderr: float  # of this round's log ratio
    ci_low: float
    ci_high: float
    n: int
    later_wins: bool
    earlier_failed: int = 0
    later_failed: int = 0
    confidence: float = 0.95
    reason: str = ""
    evidence: PairEvidence = field(default_factory=PairEvidence)
    acc_low: float = -math.inf
    acc_high: float = math.inf
    decided_by_failures: bool = False

    @property
    def rounds(self) -> int:
        return self.evidence.rounds


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
    *,
    tokens=None,
    groups=None,
    group_weights=None,
    prior: PairEvidence | None = None,
    eps: float | None = None,
    design_rounds: float = DEFAULT_DESIGN_ROUNDS,
) -> Comparison:
    """Judge a later model against an earlier one on the same documents (NaN = failed document).

    `*_losses` are each document's summed NLL with `tokens` its predicted tokens (None: every
    document weighs 1). `prior` is the pair's evidence from earlier rounds; `eps`, when given,
    replaces the schedule's advantage for this age (an earned advantage, `advantage.py`).
    """
    earlier = _loss_vector("earlier_losses", earlier_losses)
    later = _loss_vector("later_losses", later_losses)
    if earlier.shape != later.shape:
        raise ValueError(
            f"earlier_losses and later_losses must cover the same documents, got {earlier.size} and {later.size}"
        )
    eps = advantage(earlier_age_blocks, schedule) if eps is None else float(eps)
    prior = prior or PairEvidence()
    earlier_ok, later_ok = np.isfinite(earlier), np.isfinite(later)
    earlier_failed = int(earlier.size - earlier_ok.sum())
    later_failed = int(later.size - later_ok.sum())
    both = earlier_ok & later_ok
    mask = np.where(both, 1.0, np.nan)
    loss_args = {"tokens": tokens, "groups": groups, "group_weights": group_weights, "confidence": confidence}
    earlier_mean = competition_loss(earlier * mask, **loss_args).mean
    later_mean = competition_loss(later * mask, **loss_args).mean
    stat = paired_log_ratio(earlier, later, tokens, groups, group_weights)
    ci_low, ci_high = stat.relative_interval(confidence)
    diff = math.expm1(stat.log_ratio) if math.isfinite(stat.log_ratio) else math.nan

    by_failures = earlier_failed != later_failed
    evidence = prior if by_failures else prior.add(stat, design_rounds)
    acc_low, acc_high = evidence.relative_interval(confidence)
    if later_failed > earlier_failed:
        later_wins, reason = False, f"later model failed more documents ({later_failed} vs {earlier_failed})"
    elif earlier_failed > later_failed:
        later_wins, reason = True, f"earlier model failed more documents ({earlier_failed} vs {later_failed})"
    elif evidence.rounds == 0:
        later_wins, reason = False, f"only {stat.n} document(s) scored by both; the earlier model keeps the pair"
    elif evidence.beats(eps, confidence):
        later_wins, reason = True, f"later loss is below (1 - eps) x earlier loss over {evidence.rounds} round(s)"
    elif evidence.estimate < math.log1p(-eps):
        later_wins, reason = False, (f"later loss is below (1 - eps) x earlier loss, but not yet significantly "
                                     f"({evidence.rounds} round(s) of evidence)")
    else:
        later_wins, reason = False, "later loss is not below (1 - eps) x earlier loss"
    return Comparison(
        earlier_mean=earlier_mean, later_mean=later_mean, eps=eps, diff_mean=diff,
        stderr=math.sqrt(stat.variance) if math.isfinite(stat.variance) else math.inf,
        ci_low=ci_low, ci_high=ci_high, n=stat.n, later_wins=later_wins,
        earlier_failed=earlier_failed, later_failed=later_failed, confidence=float(confidence), reason=reason,
        evidence=evidence, acc_low=acc_low, acc_high=acc_high, decided_by_failures=by_failures,
    )
