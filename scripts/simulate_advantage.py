"""Play the advantage modes "age" and "earned" (issue 20) against the same synthetic histories.

Each history runs 60 days of rounds (48 a day). Models arrive with a true loss (as a log ratio to
the first model's); the leader holds the weight; every model born after the leader is judged
against it each round with our cross-round test (`subnet.scoring.sequential`, the default 95%
confidence and design rounds), where each round's log-ratio estimate is drawn from its normal
approximation: sd 0.02% for close relatives (a copier's nudge of the leader), 0.04% for
independently trained models (synthetic, in line with `simulate_decisions.py` at 2,400 documents).
A challenger that wins takes the lead (the best estimate if several win at once) and all
evidence restarts against it.

Histories:
- steady: an honest model every day, 0.15% better than the best so far;
- leaps: a 3% leap on days 1, 21 and 41, nothing else;
- copier: honest leaps of 1% (day 1) and 2% (day 30); every day a copier submits the current
  leader nudged 0.1% better;
- stalled: one model, then every day an equally good retrain (a different seed).

Printed for each: the mean gap between the leader's loss and the best loss already submitted
(how fast the frontier is recognised), the median days until a new best model leads, the mean
leadership stint, the copier's share of rounds, and false dethronings (a new leader not truly
better than the one it replaced). Run: python scripts/simulate_advantage.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace

import numpy as np

from subnet.competitions import AdvantageSchedule
from subnet.scoring.earned import EarnedAdvantage, earned_eps, model_advantage
from subnet.scoring.sequential import DEFAULT_DESIGN_ROUNDS, alpha_of, boundary

ROUNDS_PER_DAY = 48
BLOCKS_PER_ROUND = 150
DAYS = 60
SD_CLOSE, SD_INDEPENDENT = 0.0002, 0.0004


def history(kind: str):
    """(day, kind, log loss or None for 'nudge the leader') arrivals; day 0 is the first model."""
    arrivals = [(0, "honest", 0.0)]
    if kind == "steady":
        arrivals += [(d, "honest", math.log(1 - 0.0015) * d) for d in range(1, DAYS)]
    elif kind == "leaps":
        arrivals += [(d, "honest", math.log(1 - 0.03) * (i + 1)) for i, d in enumerate((1, 21, 41))]
    elif kind == "copier":
        arrivals += [(1, "honest", math.log(1 - 0.01)), (30, "honest", math.log(1 - 0.01) + math.log(1 - 0.02))]
        arrivals += [(d, "copier", None) for d in range(2, DAYS)]
    elif kind == "stalled":
        arrivals += [(d, "seed", 0.0) for d in range(1, DAYS)]
    return sorted(arrivals, key=lambda a: (a[0], a[1] != "honest"))


def play(kind: str, schedule: AdvantageSchedule, rng) -> dict:
    alpha = alpha_of(0.95)
    pending = history(kind)
    theta, born, kinds, sds, earned = [], [], [], [], {}
    leader, stints, stint_start, false_dethrones = 0, [], 0, 0
    copier_rounds, gap_sum, lead_delay, best_arrival = 0, 0.0, [], {}
    s = i = None
    total = DAYS * ROUNDS_PER_DAY
    for r in range(total):
        while pending and pending[0][0] * ROUNDS_PER_DAY <= r:
            _, k, value = pending.pop(0)
            value = theta[leader] + math.log(1 - 0.001) if value is None else value
            if theta and value < min(theta) - 1e-12:
                best_arrival[len(theta)] = r
            theta.append(value)
            born.append(r)
            kinds.append(k)
            sds.append(SD_CLOSE if k == "copier" else SD_INDEPENDENT)
            s = np.append(s, 0.0) if s is not None else np.zeros(1)
            i = np.append(i, 0.0) if i is not None else np.zeros(1)
        th, sd = np.array(theta), np.array(sds)
        challengers = np.array(born) > born[leader]
        if challengers.any():
            est = th - th[leader] + sd * rng.standard_normal(th.size)
            s = np.where(challengers, s + est / sd**2, 0.0)
            i = np.where(challengers, i + 1 / sd**2, 0.0)
            rho = DEFAULT_DESIGN_ROUNDS / sd**2  # as PairEvidence fixes it at the pair's first round
            half = np.array([boundary(x, p, alpha) for x, p in zip(i, rho)]) / np.maximum(i, 1e-300)
            upper = np.where(i > 0, s / np.maximum(i, 1e-300) + half, np.inf)
            age = (r - born[leader]) * BLOCKS_PER_ROUND
            eps = model_advantage(age, schedule, earned.get(leader))
            winners = np.flatnonzero(challengers & (upper < math.log1p(-eps)))
            if winners.size:
                new = int(winners[np.argmin(s[winners] / i[winners])])
                low = -math.expm1(upper[new])
                earned[new] = EarnedAdvantage(str(new), earned_eps(low, schedule), str(leader), low, low, 0)
                false_dethrones += theta[new] >= theta[leader]
                stints.append(r - stint_start)
                stint_start, leader = r, new
                if new in best_arrival:
                    lead_delay.append((r - best_arrival.pop(new)) / ROUNDS_PER_DAY)
                s, i = np.zeros(th.size), np.zeros(th.size)
        copier_rounds += kinds[leader] == "copier"
        gap_sum += -math.expm1(min(theta) - theta[leader])
    stints.append(total - stint_start)
    return {"gap": gap_sum / total, "delay": lead_delay, "missed": len(best_arrival),
            "stint": float(np.mean(stints)) / ROUNDS_PER_DAY, "copier": copier_rounds / total,
            "false": false_dethrones}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--cap", type=float, default=0.01)
    ap.add_argument("--min-earned", type=float, default=0.0005)
    args = ap.parse_args()
    reps = 4 if args.quick else 30
    age_mode = AdvantageSchedule(mode="age")
    modes = {"age": age_mode, "earned": replace(age_mode, mode="earned", cap=args.cap, min_earned=args.min_earned)}
    start = time.perf_counter()
    print(f"# Advantage modes on synthetic histories ({DAYS} days, {ROUNDS_PER_DAY} rounds a day, {reps} runs each)")
    print(f"earned mode: cap {args.cap:.2%}, min_earned {args.min_earned:.2%}, half-life 7 days; "
          f"age mode: eps0 0.4%, half-life 7 days")
    print("| history | mode | mean frontier gap | median days until a new best leads (missed) | "
          "mean leadership stint (days) | copier's share of rounds | false dethronings (per run) |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("steady", "leaps", "copier", "stalled"):
        for name, schedule in modes.items():
            rng = np.random.default_rng(args.seed)  # the same draws for both modes
            runs = [play(kind, schedule, rng) for _ in range(reps)]
            delays = [d for run in runs for d in run["delay"]]
            median = f"{np.median(delays):.2f}" if delays else "-"
            missed = sum(run["missed"] for run in runs) / reps
            print(f"| {kind} | {name} | {np.mean([r['gap'] for r in runs]):.3%} | {median} ({missed:.1f}) | "
                  f"{np.mean([r['stint'] for r in runs]):.1f} | {np.mean([r['copier'] for r in runs]):.1%} | "
                  f"{np.mean([r['false'] for r in runs]):.2f} |")
    print(f"\n(ran in {time.perf_counter() - start:.0f} s; seed {args.seed})")


if __name__ == "__main__":
    main()
