"""Several validators running the project's decision rule, judged by Yuma as the runtime computes it.

Runs the project's own functions: `subnet.scoring.windows.fold_pair` (one statistic per window),
`subnet.scoring.decide.decide` (the champion chain), `subnet.scoring.advantage` and
`subnet.scoring.yuma.yuma` (consensus, clipping and vtrust as opentensor/subtensor's
`epoch_dense_mechanism` computes them, see that module). Synthetic data as
`scripts/simulate_decisions.py` makes it: per-window sd of a pair's log ratio from its synthetic
per-document losses (2,400 documents; 'copy' pairs corr 0.998, independently trained pairs 0.961).

Prints:
1. the chance that an equal model ever dethrones an incumbent with no advantage left, over 1,000
   windows, when each window is counted once (now) or 2 and 3 times (the old per-round pooling at a
   round every 600 s);
2. windows to a first win at margins of 0.05% and 0.1% beyond the advantage, now and with the old
   triple counting;
3. the near-copy scenario (L 14 days old, N a copy of L from yesterday, C 0.3% better than L);
4. K validators over 14 days (48 windows a day, an epoch every 360 blocks, equal stakes): mean
   vtrust of every validator, with one validator started fresh on day 7 (backfilling recent windows),
   one losing its state on day 7, validators scoring every 1st / 2nd / 3rd window, and a
   subnet-9-style validator (one mean loss per model per round, non-competitive models filtered,
   advantage 0.5% -> 0.01% over 14,400 blocks, softmax of win rates, EMA) among ours.

Run: python scripts/simulate_consensus.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from subnet.competitions import AdvantageSchedule
from subnet.scoring.decide import Entry, counted_window, decide
from subnet.scoring.windows import WindowStat, fold_pair
from subnet.scoring.yuma import yuma

# The same synthetic documents as scripts/simulate_decisions.py (loaded from beside this file).
_spec = importlib.util.spec_from_file_location("simulate_decisions", Path(__file__).with_name("simulate_decisions.py"))
_decisions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_decisions)
PAIRS, Docs, round_sd = _decisions.PAIRS, _decisions.Docs, _decisions.round_sd

WINDOW = 150
DAY = 7_200
TEMPO = 360
NO_ADVANTAGE = AdvantageSchedule(eps0=0.0, mode="age")


def window_sds(seed: int) -> dict[str, float]:
    return {name: round_sd(Docs(corr, seed + i), 2_400, rounds=5)[0] for i, (name, corr) in enumerate(PAIRS.items())}


# ----------------------------------------------------------------------------- 1 and 2: one pair


def repeated(thetas: np.ndarray, sd: float, times: int) -> list[WindowStat]:
    """Each window's statistic as the old per-round pooling counted it: `times` times."""
    return [WindowStat(WINDOW * (i * times + k), float(t), sd**2, 2_400)
            for i, t in enumerate(thetas) for k in range(times)]


def ever_dethrones(sd: float, windows: int, reps: int, times: int, rng) -> float:
    hits = 0
    for _ in range(reps):
        thetas = sd * rng.standard_normal(windows)
        hits += fold_pair(repeated(thetas, sd, times), lambda w: 0.0).later_wins
    return hits / reps


def windows_to_win(sd: float, margin: float, eps: float, reps: int, times: int, rng, cap: int = 200) -> float:
    firsts = []
    for _ in range(reps):
        thetas = math.log1p(-(eps + margin)) + sd * rng.standard_normal(cap)
        v = fold_pair(repeated(thetas, sd, times), lambda w: eps)
        firsts.append(v.crossed_window // (WINDOW * times) + 1 if v.later_wins else math.inf)
    return float(np.median(firsts))


# ----------------------------------------------------------------------------- 4: a subnet of validators


@dataclass
class World:
    """Models arriving over the days, with true log losses; each window's per-model estimates."""

    days: int
    sd_equal: float
    sd_copy: float
    rng: np.random.Generator
    births: list[int] = field(default_factory=list)
    truth: list[float] = field(default_factory=list)
    family: list[int] = field(default_factory=list)

    def populate(self) -> None:
        """Day 0 a first model; then each day either a 0.3% improvement, a copy of the best, or an equal retrain."""
        self.add(0, 0.0, None)
        for d in range(1, self.days):
            best = int(np.argmin(self.truth))
            kind = ("better", "copy", "equal")[d % 3]
            if kind == "better":
                self.add(d * DAY + 37, self.truth[best] + math.log1p(-0.003), None)
            elif kind == "copy":
                self.add(d * DAY + 37, self.truth[best], self.family[best])
            else:
                self.add(d * DAY + 37, self.truth[best], None)

    def add(self, block: int, truth: float, family: int | None) -> None:
        self.births.append(block)
        self.truth.append(truth)
        self.family.append(len(self.family) if family is None else family)

    def estimates(self, windows: int) -> np.ndarray:
        """[window, model] log-loss estimates: shared family noise plus each model's own."""
        fam = (self.sd_equal**2 - self.sd_copy**2) / 2
        f = math.sqrt(max(fam, 0.0)) * self.rng.standard_normal((windows, len(self.truth)))
        g = math.sqrt(self.sd_copy**2 / 2) * self.rng.standard_normal((windows, len(self.truth)))
        return np.array(self.truth)[None, :] + f[:, self.family] + g


class PairWindows:
    """A validator's pairs' window statistics, built when `decide` asks for a pair (a lazy mapping)."""

    def __init__(self, world: World, est: np.ndarray, scored: set[int]) -> None:
        self.world, self.est, self.scored = world, est, sorted(scored)

    def get(self, pair, default=()):
        w = self.world
        a, b = int(pair[0]), int(pair[1])
        var = (w.sd_copy if w.family[a] == w.family[b] else w.sd_equal) ** 2
        born = max(w.births[a], w.births[b]) + 10
        return [WindowStat(i * WINDOW, float(self.est[i, b] - self.est[i, a]), var, 2400)
                for i in self.scored if born < i * WINDOW]


class OurValidator:
    def __init__(self, world: World, est: np.ndarray, schedule: AdvantageSchedule, stride: int = 1) -> None:
        self.world, self.est, self.schedule, self.stride = world, est, schedule, stride
        self.scored: set[int] = set()

    def score(self, window_index: int, horizon: int = 8) -> None:
        """As `plan_window` does: the newest counted window (this one or up to `horizon` back) not yet scored."""
        for back in range(horizon + 1):
            i = window_index - back
            if i >= 0 and i not in self.scored and counted_window(i * WINDOW, self.stride, WINDOW):
                self.scored.add(i)
                return

    def weights(self, block: int) -> dict[int, float]:
        w = self.world
        live = [m for m, b in enumerate(w.births) if b + 10 < block]
        entries = [Entry(str(m), w.births[m], f"h{m}", sum(1 for i in self.scored if w.births[m] + 10 < i * WINDOW))
                   for m in live]
        d = decide(entries, PairWindows(w, self.est, self.scored), self.schedule, all_pairs=False,
                   stride=self.stride, window_blocks=WINDOW)
        return {int(k): v for k, v in d.weights.items() if v > 0}


class Sn9Validator:
    """Subnet 9's newest rule, re-implemented: one mean loss per model per round, competitive filter, EMA."""

    def __init__(self, world: World, est: np.ndarray) -> None:
        self.world, self.est, self.ema, self.latest = world, est, {}, None

    def score(self, window_index: int) -> None:
        self.latest = window_index

    @staticmethod
    def eps(age: float) -> float:
        return max(0.0001, 0.005 - (0.005 - 0.0001) * age / 14_400)

    def weights(self, block: int) -> dict[int, float]:
        if self.latest is None:
            return {}
        w, i = self.world, self.latest
        live = sorted((m for m, b in enumerate(w.births) if b + 10 < i * WINDOW), key=lambda m: w.births[m])
        if not live:
            return {}
        loss = {m: math.exp(self.est[i, m]) for m in live}
        competitive = [m for m in live if all(loss[m] < loss[e] * (1 - 0.0001) for e in live
                                              if w.births[e] < w.births[m])] or live[:1]
        competitive = sorted(set(competitive) | {live[0]}, key=lambda m: w.births[m])
        wins = {m: 0 for m in competitive}
        for a in competitive:
            for b in competitive:
                if w.births[a] < w.births[b]:
                    later_wins = loss[b] < loss[a] * (1 - self.eps(block - w.births[a]))
                    wins[b if later_wins else a] += 1
        rates = np.array([wins[m] / max(1, len(competitive) - 1) for m in competitive])
        soft = np.exp((rates - rates.max()) / 0.01)
        now = dict(zip(competitive, soft / soft.sum()))
        keys = set(now) | set(self.ema)
        self.ema = {k: 0.5 * now.get(k, 0.0) + 0.5 * self.ema.get(k, 0.0) for k in keys}
        return dict(self.ema)


def run_subnet(world: World, validators: list, start: list[int], lose_state_at: dict[int, int],
               backfill: int, cadence: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per epoch: each validator's vtrust (NaN before it starts) and the top uid of each."""
    windows = world.days * DAY // WINDOW
    k, n_models = len(validators), len(world.births)
    vtrust, tops = [], []
    for i in range(windows):
        for v, val in enumerate(validators):
            if i == lose_state_at.get(v) and isinstance(val, OurValidator):
                val.scored = set()
            first = i == start[v] or i == lose_state_at.get(v)
            if i >= start[v] and (first or i % cadence[v] == 0):
                val.score(i)
                if first and isinstance(val, OurValidator):
                    for _ in range(backfill):
                        val.score(i)
        block = (i + 1) * WINDOW
        if block % TEMPO >= WINDOW:
            continue
        active = [v for v in range(k) if i >= start[v]]
        w = np.zeros((k + n_models, k + n_models))
        for v in active:
            for m, x in validators[v].weights(block).items():
                w[v, k + m] = x
        r = yuma([1.0 if v in active else 0.0 for v in range(k)] + [0.0] * n_models, w)
        vtrust.append([r.validator_trust[v] if v in active else np.nan for v in range(k)])
        tops.append([int(np.argmax(w[v])) if v in active and w[v].sum() > 0 else -1 for v in range(k)])
    return np.array(vtrust), np.array(tops)


def scenario(name: str, sds, days: int, histories: int, seed: int, make, start, lose, backfill, cadence):
    rows = []
    for h in range(histories):
        world = World(days, sds["equal"], sds["copy"], np.random.default_rng(seed + h))
        world.populate()
        est = world.estimates(days * DAY // WINDOW + 1)
        vt, tops = run_subnet(world, make(world, est), start, lose, backfill, cadence)
        rows.append((vt, tops))
    return rows


def near_copy(sds, rng) -> None:
    """L 14 days old, N a copy of L from yesterday, C 0.3% better than L from today: who gets the weight."""
    print("\n## The near-copy scenario (L 14 d, N = copy of L from yesterday, C 0.3% better than L from today)")
    for mode in ("age", "earned"):
        sched = AdvantageSchedule(mode=mode)
        now = 30 * DAY
        births = {"L": now - 14 * DAY, "N": now - DAY, "C": now - 200}
        true = {"L": 0.0, "N": 0.0, "C": math.log1p(-0.003)}
        sd = sds["copy"]
        stats = {}
        for a, b in (("L", "N"), ("L", "C"), ("N", "C")):
            stats[(a, b)] = [WindowStat(now + WINDOW * i, true[b] - true[a] + sd * rng.standard_normal(), sd**2, 2400)
                             for i in range(1, 21)]
        d = decide([Entry(k, v, k, 20) for k, v in births.items()], stats, sched)
        cycle = d.verdicts[("L", "C")].later_wins and not d.verdicts[("N", "C")].later_wins
        print(f"- mode {mode}: weights {d.weights} (chain {' -> '.join(d.chain)}); all-pairs verdicts cycle: {cycle}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer histories (a smoke run)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--backfill", type=int, default=8, help="past windows a fresh validator scores at start")
    args = ap.parse_args()
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    sds = window_sds(args.seed)
    reps = 200 if args.quick else 2_000
    print(f"# Validators that agree (seed {args.seed}); per-window sd of a pair's log ratio: "
          f"copy {sds['copy']:.4%}, equal {sds['equal']:.4%}")

    print("\n## An equal model ever dethrones an incumbent with no advantage left, over 1,000 windows")
    print("| pair | each window counted once (now) | twice | three times (old default cadence) |")
    print("|---|---|---|---|")
    for name in ("copy", "equal"):
        cells = [f"{ever_dethrones(sds[name], 1_000, reps, t, rng):.2%}" for t in (1, 2, 3)]
        print(f"| {name} (corr {PAIRS[name]}) | " + " | ".join(cells) + " |")

    print("\n## Windows to a first win (median), incumbent 7 days old (advantage 0.2%)")
    print("| pair | margin | now (each window once) | old (each window three times) |")
    print("|---|---|---|---|")
    for name in ("copy", "equal"):
        for m in (0.0005, 0.001):
            now, old = (windows_to_win(sds[name], m, 0.002, reps // 4, t, rng) for t in (1, 3))
            print(f"| {name} | {m:.2%} | {now:.0f} | {old:.0f} |")

    near_copy(sds, rng)

    days = 14
    histories = 1 if args.quick else 3
    print(f"\n## Mean vtrust over {days} days ({histories} histories, equal stakes, an epoch every {TEMPO} blocks)")
    def ours_rule(mode: str, stride: int = 1):
        return lambda world, est, k: [OurValidator(world, est, AdvantageSchedule(mode=mode), stride) for _ in range(k)]
    ours, ours_age = ours_rule("earned"), ours_rule("age")
    day7 = 7 * DAY // WINDOW
    cases = [
        ("3 validators, same start, every window", [0, 0, 0], {}, [1, 1, 1]),
        ("4 validators, one fresh on day 7", [0, 0, 0, day7], {}, [1, 1, 1, 1]),
        ("4 validators, one loses its state on day 7", [0, 0, 0, 0], {3: day7}, [1, 1, 1, 1]),
        ("3 validators scoring every 1st / 2nd / 3rd window", [0, 0, 0], {}, [1, 2, 3]),
    ]
    print("| scenario | rule | mean vtrust (each validator) | last validator: first epoch >= 0.95 after its start, "
          "then min | epochs with some vtrust < 0.95 | epochs where top uids differ |")
    print("|---|---|---|---|---|---|")
    for label, start, lose, cadence in cases:
        rules = [("ours, earned", ours), ("ours, age", ours_age)]
        if len(set(cadence)) > 1:
            rules += [("ours, earned, evidence_stride 3", ours_rule("earned", 3)),
                      ("ours, age, evidence_stride 3", ours_rule("age", 3))]
        for rule, make in rules:
            rows = scenario(label, sds, days, histories, args.seed, lambda w, e: make(w, e, len(start)), start, lose,
                            args.backfill, cadence)
            print_row(label, rule, rows, start, lose)
        sn9 = lambda w, e: [*ours(w, e, len(start) - 1), Sn9Validator(w, e)]  # noqa: E731
        rows = scenario(label, sds, days, histories, args.seed, sn9, start, lose, args.backfill, cadence)
        print_row(label, "ours, earned + one subnet-9-style (last)", rows, start, lose)
    print(f"\n(ran in {time.perf_counter() - started:.0f} s)")


def print_row(label, rule, rows, start, lose) -> None:
    vts = np.concatenate([vt for vt, _ in rows])
    tops = np.concatenate([t for _, t in rows])
    means = " / ".join(f"{np.nanmean(vts[:, v]):.3f}" for v in range(vts.shape[1]))
    last = vts.shape[1] - 1
    begin = min(start[last], lose.get(last, 10**9))
    per_epoch = [vt[:, last] for vt, _ in rows]
    epochs_in = [int(begin * WINDOW // TEMPO)] * len(rows)
    reached, mins = [], []
    for series, e0 in zip(per_epoch, epochs_in):
        after = series[e0:]
        ok = np.flatnonzero(after >= 0.95)
        reached.append(int(ok[0]) if ok.size else math.inf)
        mins.append(float(np.nanmin(after[ok[0]:])) if ok.size else math.nan)
    low = np.mean(np.nanmin(np.where(np.isnan(vts), 1.0, vts), axis=1) < 0.95)
    live = [t[t >= 0] for t in tops]
    differ = np.mean([len(set(t)) > 1 for t in live if t.size])
    print(f"| {label} | {rule} | {means} | epoch {max(reached)} (window {max(reached) * TEMPO // WINDOW}), "
          f"min {min(mins):.3f} | {low:.1%} | {differ:.1%} |")


if __name__ == "__main__":
    main()
