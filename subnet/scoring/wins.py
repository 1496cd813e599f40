"""Every model against every other: who wins each pair, and each model's win rate.

Order is by birth: the commitment's block, ties broken by key (lexicographically), so the
result never depends on the order candidates arrive in. In each pair the earlier model holds
the advantage for its age at `current_block`; the later model wins only by the paired test in
`compare.py`, which pools the pair's evidence from earlier rounds (`evidence`, keyed by
(earlier key, later key)) with this round's; the result carries every pair's updated evidence.
`advantages` replaces the schedule's advantage of an earlier model by one it earned (see
`advantage.earned_advantage`).

Two kinds of candidate take no part in the comparisons and get win rate 0:
- copies: candidates whose non-None `content_hash` already appeared under an earlier (block,
  key). Only the earliest counts; `copies` maps each copy to it. This is checked first, so a
  copy is reported as a copy even if it also failed.
- failed: candidates with no documents, or no finite loss at all; `failed` gives the reason.
A model that failed only some documents is still compared; `paired_compare` makes it lose
against any model that failed fewer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Iterable, Mapping

import numpy as np

from subnet.competitions import AdvantageSchedule
from subnet.scoring.compare import Comparison, paired_compare
from subnet.scoring.decide import find_copies
from subnet.scoring.sequential import DEFAULT_DESIGN_ROUNDS, PairEvidence


@dataclass(frozen=True, eq=False)
class Candidate:
    """A model in a round: its hotkey (key), birth block, per-document losses, content hash.

    `losses` are each document's summed NLL when the round passes `tokens` to `compute_wins`, or
    per-document losses that each weigh the same when it does not.
    """

    key: str
    block: int
    losses: np.ndarray
    content_hash: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(f"candidate key must be a non-empty string, got {self.key!r}")
        losses = np.asarray(self.losses, dtype=np.float64)
        if losses.ndim != 1:
            raise ValueError(f"candidate {self.key!r}: losses must be 1-D, got shape {losses.shape}")
        object.__setattr__(self, "losses", losses)

    @property
    def birth(self) -> tuple[int, str]:
        """The sort key that decides who is earlier: block first, then key."""
        return (self.block, self.key)


@dataclass
class WinResult:
    """Win rates and wins for every candidate key; comparisons keyed by (earlier key, later key)."""

    win_rates: dict[str, float] = field(default_factory=dict)
    wins: dict[str, int] = field(default_factory=dict)
    comparisons: dict[tuple[str, str], Comparison] = field(default_factory=dict)
    copies: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def failure_reason(candidate: Candidate) -> str | None:
    """Why a candidate cannot be compared at all, or None if it can."""
    if candidate.losses.size == 0:
        return "no documents were scored"
    if not np.isfinite(candidate.losses).any():
        return f"all {candidate.losses.size} documents failed (no finite loss)"
    return None


def _check_candidates(candidates: list[Candidate]) -> None:
    seen: set[str] = set()
    for c in candidates:
        if c.key in seen:
            raise ValueError(f"duplicate candidate key {c.key!r}")
        seen.add(c.key)
    sizes = {c.losses.size for c in candidates if c.losses.size}
    if len(sizes) > 1:
        detail = ", ".join(f"{c.key!r}: {c.losses.size}" for c in sorted(candidates, key=lambda c: c.key))
        raise ValueError(f"candidates must be scored on the same documents; document counts differ ({detail})")


def compute_wins(
    candidates: Iterable[Candidate],
    current_block: int,
    schedule: AdvantageSchedule,
    confidence: float = 0.95,
    *,
    tokens=None,
    groups=None,
    group_weights=None,
    evidence: Mapping[tuple[str, str], PairEvidence] | None = None,
    advantages: Mapping[str, float] | None = None,
    design_rounds: float = DEFAULT_DESIGN_ROUNDS,
) -> WinResult:
    """Pairwise paired comparisons among the valid candidates, and each one's win rate."""
    ordered = sorted(candidates, key=lambda c: c.birth)
    _check_candidates(ordered)
    result = WinResult()
    result.copies = find_copies(ordered)
    for c in ordered:
        if c.key not in result.copies and (reason := failure_reason(c)) is not None:
            result.failed[c.key] = reason
    valid = [c for c in ordered if c.key not in result.copies and c.key not in result.failed]

    wins = {c.key: 0 for c in ordered}
    for earlier, later in combinations(valid, 2):  # `valid` is in birth order, so earlier comes first
        comparison = paired_compare(
            earlier.losses, later.losses, current_block - earlier.block, schedule, confidence,
            tokens=tokens, groups=groups, group_weights=group_weights,
            prior=(evidence or {}).get((earlier.key, later.key)),
            eps=(advantages or {}).get(earlier.key), design_rounds=design_rounds,
        )
        result.comparisons[(earlier.key, later.key)] = comparison
        wins[later.key if comparison.later_wins else earlier.key] += 1

    opponents = len(valid) - 1
    valid_keys = {c.key for c in valid}
    for c in sorted(ordered, key=lambda c: c.key):
        result.wins[c.key] = wins[c.key]
        if c.key not in valid_keys:
            result.win_rates[c.key] = 0.0
        else:
            result.win_rates[c.key] = wins[c.key] / opponents if opponents else 1.0
    return result
