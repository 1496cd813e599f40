"""Weights the chain accepts: the runtime's minimum weight count, met without changing the ranking.

The runtime (pallet subtensor, `check_length`) requires at least `min(subnet_n, MinAllowedWeights)`
entries in a weight vector, zeros included, unless it is a single self-weight. Its default
`MinAllowedWeights` is 1024, so on most subnets that means *every* uid. A softmax at temperature
0.01 leaves most miners with weights that quantise to u16 zero, which the SDK drops (and its own
local check then compares against the raw `MinAllowedWeights`, not the `min` above, and refuses).

`fill_to_minimum` gives the missing uids the smallest positive u16 (1 of 65535). Every uid that
had a positive value keeps it, so the order is unchanged: the filled uids tie with each other and
sit below (or tie with) everything that already had weight, exactly where their zero was.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

U16_MAX = 65535
FLOOR = 1  # the smallest positive u16 weight


def required_count(subnet_n: int, min_allowed_weights: int) -> int:
    """How many entries the runtime requires in a weight vector on this subnet."""
    return max(0, min(int(subnet_n), int(min_allowed_weights)))


def fill_to_minimum(uids: Sequence[int], values: Sequence[int], subnet_uids: Sequence[int], required: int,
                    preferred: Sequence[int] = ()) -> tuple[list[int], list[int]]:
    """(uids, values) with at least `required` entries, adding `FLOOR` on uids that have none.

    `preferred` uids are filled first (the caller's own uids, highest float weight first), then
    the rest of `subnet_uids` (the registered uids) in ascending order. A vector that already has
    enough entries comes back unchanged.
    """
    out_uids, out_values = [int(u) for u in uids], [int(v) for v in values]
    if len(out_uids) >= required:
        return out_uids, out_values
    present = set(out_uids)
    registered = sorted(int(u) for u in subnet_uids)
    allowed = set(registered)
    candidates = [int(u) for u in preferred if int(u) in allowed] + registered
    for uid in candidates:
        if len(out_uids) >= required:
            break
        if uid not in present:
            present.add(uid)
            out_uids.append(uid)
            out_values.append(FLOOR)
    return out_uids, out_values


def fill_floats_to_minimum(uids: Sequence[int], weights: Sequence[float], subnet_uids: Sequence[int],
                           required: int) -> tuple[list[int], list[float]]:
    """The same rule on float weights (the local chain stores floats): a uid with no weight, or
    one whose weight would quantise to u16 zero, gets the weight of one u16 step of the largest."""
    pairs = {int(u): float(w) for u, w in zip(uids, weights)}
    top = max(pairs.values(), default=0.0)
    if top <= 0:
        return list(pairs), list(pairs.values())
    step = top / U16_MAX
    kept = {u: w for u, w in pairs.items() if round(w / step) >= FLOOR}
    ranked = sorted(pairs, key=lambda u: -pairs[u])
    filled_uids, _ = fill_to_minimum(list(kept), [FLOOR] * len(kept), subnet_uids, required, preferred=ranked)
    return filled_uids, [kept.get(u, step) for u in filled_uids]


def weights_problem(uids: Sequence[int], weights: Sequence[float]) -> str:
    """Why a weight vector would be rejected, or '' if it is acceptable (shared by both adapters)."""
    if len(uids) != len(weights):
        return f"uids and weights differ in length ({len(uids)} vs {len(weights)})"
    if len({int(u) for u in uids}) != len(uids):
        return "duplicate uids"
    if any(int(u) < 0 for u in uids):
        return "negative uid"
    if any(not math.isfinite(float(w)) or float(w) < 0 for w in weights):
        return "weights must be finite and non-negative"
    if not weights or float(sum(weights)) <= 0:
        return "all weights are zero; nothing to set"
    return ""
