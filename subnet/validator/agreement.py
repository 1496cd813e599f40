"""How far this validator agrees with the chain's consensus, and whether it is still catching up.

A validator's income is its vtrust: the share of its weights that survives clipping to the
stake-weighted consensus (`subnet.scoring.yuma`). The chain publishes each uid's consensus, so the
vtrust our current weights would get is `sum_j min(w_j, C_j)`: computed every round, kept in the
state's meta table, shown in `/healthz` and `/metrics` so an operator sees a disagreement before
the dividends do. A validator that has scored fewer than `CATCH_UP_WINDOWS` windows in the last
day is catching up (fresh, or its state was lost): it says so in the logs and `/healthz`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

from subnet.chain.base import Metagraph
from subnet.scoring.yuma import agreement

log = logging.getLogger(__name__)

META_KEY = "agreement"
CATCH_UP_WINDOWS = 4
DAY_BLOCKS = 7_200


@dataclass(frozen=True)
class AgreementReport:
    agreement: float | None  # the vtrust our current weights get against the chain's consensus (None: no consensus)
    consensus_top_uid: int | None  # the uid the consensus weights most
    our_top_uid: int | None
    windows_last_day: int
    catching_up: bool
    block: int


def assess_agreement(metagraph: Metagraph, uids: list[int], weights: list[float], windows_last_day: int,
                     block: int) -> AgreementReport:
    consensus = metagraph.consensus_by_uid()
    ours = {int(u): float(w) for u, w in zip(uids, weights) if w > 0}
    has_consensus = any(v > 0 for v in consensus.values())
    top = max(consensus, key=consensus.get) if has_consensus else None
    mine = max(ours, key=ours.get) if ours else None
    value = agreement(ours, consensus) if has_consensus and ours else None
    return AgreementReport(value, top, mine, windows_last_day, windows_last_day < CATCH_UP_WINDOWS, block)


def record_agreement(state, metrics, metagraph: Metagraph, block: int, window_blocks: int) -> AgreementReport:
    """Assess against the weights this validator last set (or would set) and keep the report."""
    attempt = state.latest_weights_attempt()
    uids, weights = (attempt.uids, attempt.weights) if attempt is not None else ([], [])
    recent = state.windows_scored_since(max(0, block - DAY_BLOCKS - window_blocks))
    report = assess_agreement(metagraph, uids, weights, recent, block)
    state.set_meta(META_KEY, json.dumps(asdict(report)))
    if report.agreement is not None:
        metrics.agreement.set(report.agreement)
    metrics.catching_up.set(1 if report.catching_up else 0)
    if report.catching_up:
        log.info("catching up: %d window(s) scored in the last day (of %d needed); backfilling recent windows "
                 "for the models the chain weights", recent, CATCH_UP_WINDOWS)
    if report.agreement is not None and report.agreement < 0.95:
        log.warning("agreement with the chain's consensus is %.3f (consensus weights uid %s most, we weight uid %s)",
                    report.agreement, report.consensus_top_uid, report.our_top_uid)
    return report


def read_agreement(state) -> dict | None:
    raw = state.get_meta(META_KEY)
    try:
        return json.loads(raw) if raw else None
    except (TypeError, ValueError):
        return None
