"""The weights of a competition as a pure function of public data: a champion chain in commit order.

Inputs are what every validator can re-derive: each model's commitment (block, key, content
hash), and each pair's per-window statistics on documents chosen by the windows' block hashes
(`windows.py`). Nothing here reads a validator's own history (no EMA, no "who led when I looked"),
so two validators that scored the same windows produce the same weights, whatever their start
time or restarts.

The ranking walks the valid models in birth order (block, then key) and keeps a champion: the
first model is champion; each later model takes over when its pair with the *current champion*
says it won (the cross-window test against the champion's advantage). The last champion gets the
competition's weight. Why a chain and not win rates over all pairs: pairwise wins with an
advantage need not be transitive. A near-copy N of an old leader L, committed yesterday, holds a
young model's advantage over a real challenger C committed today; C beats L, N beats C, L beats N,
and win rates would split the prize three ways (L's owner keeping two thirds). In the chain N is
only ever compared with the champion L, which it does not beat, so its advantage never applies
and C takes the weight, as it should.

Advantages: mode "age" gives each earlier model `advantage(age at the window)`. Mode "earned"
gives a model that took the championship what it showed at the window it first crossed
(`earned.py`), replayed here from the windows, not remembered from what one validator watched.

A model takes part when it has at least one scored window, is not a copy (the earliest
commitment of a content hash owns it) and did not fail every document of its latest window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Callable, Mapping, Sequence

from subnet.competitions import AdvantageSchedule
from subnet.scoring.earned import EarnedAdvantage, earned_eps, model_advantage
from subnet.scoring.sequential import DEFAULT_DESIGN_ROUNDS
from subnet.scoring.windows import PairVerdict, WindowStat, fold_pair


@dataclass(frozen=True)
class Entry:
    """A model as the decision sees it. `failed` is why it cannot take part (None: it can)."""

    key: str
    block: int
    content_hash: str | None = None
    scored_windows: int = 0
    failed: str | None = None

    @property
    def birth(self) -> tuple[int, str]:
        return (self.block, self.key)


@dataclass
class Decision:
    """The champion, the chain that led to it, every pair's verdict and the weights (champion: 1)."""

    champion: str | None = None
    chain: list[str] = field(default_factory=list)
    verdicts: dict[tuple[str, str], PairVerdict] = field(default_factory=dict)
    win_rates: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    earned: dict[str, EarnedAdvantage] = field(default_factory=dict)
    copies: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def find_copies(entries) -> dict[str, str]:
    """Each copy's key -> the earliest (by birth) key with the same content hash (None: never a copy).

    Takes anything with `key`, `birth` and `content_hash` (an `Entry`, a `wins.Candidate`)."""
    first: dict[str, str] = {}
    copies: dict[str, str] = {}
    for e in sorted(entries, key=lambda e: e.birth):
        if e.content_hash:
            owner = first.setdefault(e.content_hash, e.key)
            if owner != e.key:
                copies[e.key] = owner
    return copies


def _eps_at(entry: Entry, schedule: AdvantageSchedule, earned: EarnedAdvantage | None, advantage_at=None):
    """The earlier model's advantage at each window, under the advantage in force at that window
    (`advantage_at`, from the competition schedule; None: `schedule` throughout)."""
    if advantage_at is None:
        return lambda window: model_advantage(window - entry.block, schedule, earned)
    return lambda window: model_advantage(window - entry.block, advantage_at(window), earned)


def decide(
    entries: Sequence[Entry],
    stats: Mapping[tuple[str, str], Sequence[WindowStat]],
    schedule: AdvantageSchedule,
    confidence: float = 0.95,
    design_rounds: float = DEFAULT_DESIGN_ROUNDS,
    *,
    all_pairs: bool = True,
    stride: int = 1,
    window_blocks: int = 150,
    advantage_at: Callable[[int], AdvantageSchedule] | None = None,
) -> Decision:
    """The competition's decision from its models and their pairs' windows (keyed (earlier, later)).

    The weights need only the chain's pairs; `all_pairs` also judges every other pair, for the win
    rates the tables show (a simulator of many validators leaves it off: the weights are the same).
    `stride` > 1 counts only every stride-th window (`counted_window`): validators of different
    speeds then judge on the same windows, at the price of slower decisions. `advantage_at(window)`:
    the advantage in force at a window when the schedule retuned it (a pair's windows before and after
    the change each use their own); `schedule` (the one in force now) still picks the mode and clamps.
    """
    if stride > 1:
        stats = _StrideView(stats, stride, window_blocks)
    ordered = sorted(entries, key=lambda e: e.birth)
    if len({e.key for e in ordered}) != len(ordered):
        raise ValueError("duplicate model keys in one competition")
    out = Decision(copies=find_copies(ordered))
    for e in ordered:
        if e.key in out.copies:
            continue
        if e.failed:
            out.failed[e.key] = e.failed
        elif e.scored_windows <= 0:
            out.failed[e.key] = "not scored in any window yet"
    valid = [e for e in ordered if e.key not in out.copies and e.key not in out.failed]
    by_key = {e.key: e for e in valid}
    _walk_chain(out, valid, stats, schedule, confidence, design_rounds, advantage_at)
    wins = {e.key: 0 for e in valid}
    for earlier, later in (combinations(valid, 2) if all_pairs else ()):
        verdict = out.verdicts.get((earlier.key, later.key))
        if verdict is None:
            eps_at = _eps_at(earlier, schedule, out.earned.get(earlier.key), advantage_at)
            verdict = fold_pair(stats.get((earlier.key, later.key), ()), eps_at, confidence, design_rounds)
            out.verdicts[(earlier.key, later.key)] = verdict
        wins[later.key if verdict.later_wins else earlier.key] += 1
    opponents = len(valid) - 1
    for e in ordered:
        out.win_rates[e.key] = (wins[e.key] / opponents if opponents else 1.0) if e.key in by_key else 0.0
    out.weights = {e.key: (1.0 if e.key == out.champion else 0.0) for e in ordered}
    return out


def counted_window(window: int, stride: int = 1, window_blocks: int = 150) -> bool:
    """Whether a window's evidence counts: every `stride`-th seed window, the same for every validator."""
    return stride <= 1 or (window // window_blocks) % stride == 0


def newest_counted(window: int, stride: int = 1, window_blocks: int = 150) -> int:
    """The newest window at or before `window` whose evidence counts."""
    return window - ((window // window_blocks) % max(1, stride)) * window_blocks


class _StrideView:
    def __init__(self, stats, stride: int, window_blocks: int) -> None:
        self.stats, self.stride, self.window_blocks = stats, stride, window_blocks

    def get(self, pair, default=()):
        return [s for s in self.stats.get(pair, default) if counted_window(s.window, self.stride, self.window_blocks)]


def _walk_chain(out: Decision, valid: Sequence[Entry], stats, schedule, confidence, design_rounds,
                advantage_at=None) -> None:
    champion: Entry | None = None
    for entry in valid:
        if champion is None:
            champion = entry
            out.chain.append(entry.key)
            continue
        eps_at = _eps_at(champion, schedule, out.earned.get(champion.key), advantage_at)
        verdict = fold_pair(stats.get((champion.key, entry.key), ()), eps_at, confidence, design_rounds)
        out.verdicts[(champion.key, entry.key)] = verdict
        if not verdict.later_wins:
            continue
        if schedule.mode == "earned":
            out.earned[entry.key] = _earned_from(entry.key, champion.key, verdict, schedule)
        champion = entry
        out.chain.append(entry.key)
    out.champion = champion.key if champion is not None else None


def _earned_from(key: str, beaten: str, verdict: PairVerdict, schedule: AdvantageSchedule) -> EarnedAdvantage:
    """What a new champion earned: the lower end of its improvement at the window it first crossed."""
    if verdict.decided_by_failures or verdict.crossed_window is None:
        return EarnedAdvantage(key, float(schedule.min_earned), beaten, 0.0, 0.0, verdict.evidence.rounds, True)
    low, high = -verdict.cross_high, -verdict.cross_low
    return EarnedAdvantage(key, earned_eps(low, schedule), beaten, low, high, verdict.evidence.rounds)

