"""A schedule change in the middle of a pair's evidence: each window is folded with the advantage in
force at its seed block, so the verdict is a pure function of the windows and the schedule."""

from __future__ import annotations

import numpy as np
import pytest

from subnet.competitions import AdvantageSchedule
from subnet.scoring.decide import Entry, decide
from subnet.scoring.windows import window_stat

WIDE = AdvantageSchedule(eps0=0.2, half_life_blocks=1e9, mode="age")  # the later model cannot beat this
NARROW = AdvantageSchedule(eps0=0.001, half_life_blocks=1e9, mode="age")
WINDOWS = [1_500 + 150 * i for i in range(6)]


def _stats():
    rng = np.random.default_rng(3)
    out = []
    for w in WINDOWS:
        base = rng.normal(3.0, 0.3, size=150)
        out.append(window_stat(w, base, base * 0.97 + rng.normal(0, 0.005, size=150)))
    return {("old", "new"): out}


ENTRIES = [Entry("old", 100, "h1", 6), Entry("new", 1_000, "h2", 6)]


def _decide(change_at: int):
    at = lambda window: NARROW if window >= change_at else WIDE  # noqa: E731
    return decide(ENTRIES, _stats(), at(10**9), advantage_at=at)


def test_windows_before_a_retune_keep_the_old_advantage():
    assert decide(ENTRIES, _stats(), WIDE).champion == "old"
    assert decide(ENTRIES, _stats(), NARROW).champion == "new"
    assert _decide(change_at=0).champion == "new"  # every window under the narrow advantage
    assert _decide(change_at=10**9).champion == "old"  # none
    mid = _decide(change_at=WINDOWS[3])
    verdict = mid.verdicts[("old", "new")]
    assert verdict.eps == pytest.approx(NARROW.eps0, rel=1e-5)  # the latest window's advantage
    assert verdict.later_wins and verdict.crossed_window >= WINDOWS[3]  # never on a wide window
    # Three windows under the wide advantage weigh against the later model: not the narrow-only verdict.
    only_narrow = decide(ENTRIES, {("old", "new"): _stats()[("old", "new")][3:]}, NARROW)
    assert verdict.acc_low != only_narrow.verdicts[("old", "new")].acc_low


def test_the_same_windows_and_schedule_give_the_same_decision():
    a, b = _decide(WINDOWS[2]), _decide(WINDOWS[2])
    assert (a.champion, a.weights) == (b.champion, b.weights)
    print(a.champion, a.verdicts[("old", "new")])
