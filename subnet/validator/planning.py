"""Which window a round scores, and which models: the round's plan, a pure function of the state.

The current window while it has models left to score (each model once per window); then, so that
spare time is never spent on the same documents again, the newest older window that lacks a score of
a model in play (backfill), on documents re-derived from that window's block hash.
"""

from __future__ import annotations

import logging
from typing import Mapping

from subnet.scoring.decide import counted_window, newest_counted
from subnet.validator import state as st
from subnet.validator.context import RoundDeps
from subnet.data.sampling import seed_block
from subnet.validator.scheduler import Schedule, SchedulingCandidate, eligible_for_window, schedule_round
from subnet.validator.state import ModelRecord, ValidatorState

log = logging.getLogger(__name__)


def plan(state: ValidatorState, models: Mapping[str, ModelRecord], block: int, deps: RoundDeps,
         fresh: set[str] = frozenset(), *, window: int | None = None,
         chain_weights: Mapping[str, float] | None = None) -> Schedule:
    """The round's models for `window` (default: the current one), leaving out those already scored in it.

    `fresh` hotkeys (re-registered since the last round) are planned without their stale weight;
    `chain_weights` (the incentive the chain's consensus pays) puts the models other validators
    weight among the holders. A past window (backfill) takes only models that predate its seed block.
    """
    cfg = deps.config
    current = seed_block(block, cfg.seed_window_blocks)
    window = current if window is None else window
    weights = {cid: {k: v for k, v in state.ema(cid).items() if k not in fresh} for cid in deps.competitions}
    done = {cid: state.window_model_ids(cid, window) for cid in deps.competitions}
    # An older window (backfill) scores the models in play now (scored in the newest counted window, or
    # holding weight here or on chain) on older documents; the newest counted window takes every model.
    newest = {cid: newest_counted(current, c.evidence_stride, cfg.seed_window_blocks)
              for cid, c in deps.competitions.items()}
    in_play = {cid: state.window_model_ids(cid, newest[cid]) for cid in deps.competitions}
    chain_weights = chain_weights or {}

    def wanted(m: ModelRecord) -> bool:
        if window >= newest[m.competition] or m.id in in_play[m.competition]:
            return True
        return weights[m.competition].get(m.hotkey, 0.0) > 0 or chain_weights.get(m.hotkey, 0.0) > 0

    candidates = [
        SchedulingCandidate(
            key=m.hotkey, competition=m.competition, commit_block=m.block,
            weight=weights[m.competition].get(m.hotkey, 0.0), last_evaluated_round=m.last_round,
            chain_weight=chain_weights.get(m.hotkey, 0.0),
        )
        for m in models.values()
        if m.competition in deps.competitions and m.status in (st.MODEL_PENDING, st.MODEL_VERIFIED, st.MODEL_RETRY)
        and not m.parked()  # repeated transient failures: put off with backoff (state.models.park_seconds)
        and m.id not in done[m.competition]  # a window's documents are scored once per model
        and eligible_for_window(m.block, window, cfg.eligibility_margin_blocks)
        and counted_window(window, deps.competitions[m.competition].evidence_stride, cfg.seed_window_blocks)
        and wanted(m)
    ]
    return schedule_round(
        candidates, block if window == current else window + cfg.seed_window_blocks,
        cfg.max_models_per_round, window=cfg.seed_window_blocks,
        margin=cfg.eligibility_margin_blocks, min_revisits=cfg.min_revisits_per_round,
    )


def plan_window(state: ValidatorState, models: Mapping[str, ModelRecord], block: int, deps: RoundDeps,
                fresh: set[str], chain_weights: Mapping[str, float], earliest: int = 0) -> tuple[int, Schedule]:
    """The window this round scores: the current one while it has models left, else the newest past
    window (up to `backfill_windows` back, none before `earliest`: the start of the schedule entry in
    force, so a round never mixes entries) that lacks a score of a model that decides the weights."""
    cfg = deps.config
    current = seed_block(block, cfg.seed_window_blocks)
    schedule = plan(state, models, block, deps, fresh, chain_weights=chain_weights)
    if any(schedule.selected.values()):
        return current, schedule
    for back in range(1, cfg.backfill_windows + 1):
        window = current - back * cfg.seed_window_blocks
        if window < max(0, earliest):
            break
        past = plan(state, models, block, deps, fresh, window=window, chain_weights=chain_weights)
        if any(past.selected.values()):
            log.info("the current window is scored; backfilling window %d (%d back)", window, back)
            return window, past
    return current, schedule
