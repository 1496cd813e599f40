"""A pair's evidence, one statistic per seed window, folded in window order: no window counts twice.

The documents of a round are chosen by the hash of the window's seed block (`floor(block / 150) *
150`), so every round inside one window scores the *same* documents. Pooling one statistic per
round would count those documents again and again (three rounds a window at the default cadence
tripled the chance that an equal model ever dethrones the incumbent). Here the unit of evidence is
the window: a pair has at most one `WindowStat` per window (a duplicate is an error, not a merge),
and `fold_pair` is a pure function of the set of windows, so two validators that scored the same
windows reach the same verdict, whatever order, restarts or resumed rounds they went through.

The fold is the cross-round test of `sequential.py` (Robbins' normal-mixture confidence
sequence, rho fixed by the first usable window's variance), checked at every window in order
against the earlier model's advantage *at that window's seed block*: a public number, the same for
every validator whenever it computes. The verdict is sticky: the later model wins from the first
window at which the sequence's upper end fell below log(1 - eps) (the anytime-valid guarantee is
about ever crossing, so a later wobble does not undo it). Windows where one model failed more
documents add no evidence; if the pair's *latest* window is such a window, it decides the pair
(non-finite losses lose, always).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from subnet.scoring.loss import paired_log_ratio, relative
from subnet.scoring.sequential import DEFAULT_DESIGN_ROUNDS, PairEvidence, alpha_of


@dataclass(frozen=True)
class WindowStat:
    """One window's paired statistic of a pair: log(L_later / L_earlier), its variance, documents
    both scored, and each model's failed documents in that window."""

    window: int  # the seed block
    log_ratio: float
    variance: float
    n: int
    earlier_failed: int = 0
    later_failed: int = 0

    @property
    def usable(self) -> bool:
        """Adds evidence: equal failure counts and a finite statistic over at least two documents."""
        return (self.earlier_failed == self.later_failed and self.n >= 2 and math.isfinite(self.log_ratio)
                and math.isfinite(self.variance) and self.variance > 0)


def window_stat(window: int, earlier_nll, later_nll, tokens=None, groups=None, group_weights=None) -> WindowStat:
    """The statistic of one window from both models' per-document NLL on its documents (NaN: failed)."""
    earlier = np.asarray(earlier_nll, dtype=np.float64)
    later = np.asarray(later_nll, dtype=np.float64)
    if earlier.shape != later.shape:
        raise ValueError(f"window {window}: the two models scored different documents "
                         f"({earlier.size} and {later.size})")
    stat = paired_log_ratio(earlier, later, tokens, groups, group_weights)
    return WindowStat(int(window), float(stat.log_ratio), float(stat.variance), int(stat.n),
                      int((~np.isfinite(earlier)).sum()), int((~np.isfinite(later)).sum()))


@dataclass(frozen=True)
class PairVerdict:
    """What a pair's windows say. `crossed_window` is the first window of a win (None: none);
    [cross_low, cross_high] the confidence sequence for L_later / L_earlier - 1 at that window."""

    later_wins: bool
    evidence: PairEvidence
    acc_low: float
    acc_high: float
    eps: float  # the earlier model's advantage at the pair's latest window
    windows: int  # windows of any kind (including failure-decided ones)
    reason: str
    decided_by_failures: bool = False
    crossed_window: int | None = None
    cross_low: float = -math.inf
    cross_high: float = math.inf


def sorted_windows(stats: Sequence[WindowStat]) -> list[WindowStat]:
    """The stats in window order; two stats for one window are refused (that would count it twice)."""
    ordered = sorted(stats, key=lambda s: s.window)
    for a, b in zip(ordered, ordered[1:]):
        if a.window == b.window:
            raise ValueError(f"window {a.window} appears twice in one pair's evidence")
    return ordered


def fold_pair(stats: Sequence[WindowStat], eps_at: Callable[[int], float], confidence: float = 0.95,
              design_rounds: float = DEFAULT_DESIGN_ROUNDS) -> PairVerdict:
    """The pair's verdict from its windows; `eps_at(window)` is the earlier model's advantage there."""
    ordered = sorted_windows(stats)
    usable = [s for s in ordered if s.usable]
    alpha = alpha_of(confidence)
    if not (design_rounds > 0 and math.isfinite(design_rounds)):
        raise ValueError(f"design_rounds must be a positive number, got {design_rounds!r}")
    eps_last = float(eps_at(ordered[-1].window)) if ordered else math.nan
    if not usable:
        evidence = PairEvidence()
        crossed = None
        low = high = None
    else:
        theta = np.array([s.log_ratio for s in usable])
        inv_var = 1.0 / np.array([s.variance for s in usable])
        rho = float(design_rounds) * float(inv_var[0])
        info = np.cumsum(inv_var)
        weighted = np.cumsum(theta * inv_var)
        half = np.sqrt((info + rho) * (np.log((info + rho) / rho) + 2.0 * math.log(1.0 / alpha))) / info
        upper, lower = weighted / info + half, weighted / info - half
        limits = np.log1p(-np.array([float(eps_at(s.window)) for s in usable]))
        hits = np.flatnonzero(upper < limits)
        crossed = int(hits[0]) if hits.size else None
        evidence = PairEvidence(float(weighted[-1]), float(info[-1]), len(usable), rho)
        low, high = (lower[crossed], upper[crossed]) if crossed is not None else (None, None)
    acc_low, acc_high = evidence.relative_interval(confidence)
    base = dict(evidence=evidence, acc_low=acc_low, acc_high=acc_high, eps=eps_last, windows=len(ordered))
    if crossed is not None:
        base.update(crossed_window=usable[crossed].window, cross_low=relative(low), cross_high=relative(high))
    last = ordered[-1] if ordered else None
    if last is not None and last.earlier_failed != last.later_failed:
        later = last.earlier_failed > last.later_failed
        who = "earlier" if later else "later"
        return PairVerdict(later, reason=f"{who} model failed more documents in window {last.window} "
                           f"({max(last.earlier_failed, last.later_failed)} vs "
                           f"{min(last.earlier_failed, last.later_failed)})", decided_by_failures=True, **base)
    if crossed is not None:
        return PairVerdict(True, reason=f"later loss below (1 - eps) x earlier loss from window "
                           f"{usable[crossed].window} ({crossed + 1} window(s) of evidence)", **base)
    if not usable:
        return PairVerdict(False, reason="no window scored by both; the earlier model keeps the pair", **base)
    if evidence.estimate < math.log1p(-eps_last):
        return PairVerdict(False, reason=f"later loss below (1 - eps) x earlier loss, not yet significantly "
                           f"({evidence.rounds} window(s))", **base)
    return PairVerdict(False, reason="later loss is not below (1 - eps) x earlier loss", **base)
