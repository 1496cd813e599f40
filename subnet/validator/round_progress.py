"""A round's progress, kept as it goes, so that a stop, a kill or a locked database costs no finished work.

Each model's losses are written the moment it is scored. A round that stops part-way (a stop request,
`kill -9`, a state write that stayed locked) is resumed by the next run: same round, same seed, same
documents, same planned models, scoring only those still missing. Scores the state could not take
are held in memory (`RoundDeps.unsaved_scores`) for the resumed round.
"""

from __future__ import annotations

import logging
from typing import Mapping

from subnet.eval.types import DocLosses, ScoreOutcome
from subnet.validator.context import RoundDeps
from subnet.validator.faults import is_own_fault
from subnet.validator.state import (
    ModelRecord,
    RoundRecord,
    ScoredModel,
    StateError,
    is_lock_error,
)

log = logging.getLogger(__name__)


def keep_score(deps: RoundDeps, round_id: int, competition: str, record: ModelRecord, outcome: ScoreOutcome) -> None:
    """Write one model's outcome now; if the state stays locked, hold it in memory for a resume."""
    scored = ScoredModel(competition, record.hotkey, record.id, outcome.error, outcome.detail, outcome.seconds,
                         outcome.tokens_per_s, outcome.losses.to_bytes() if outcome.losses is not None else None)
    try:
        deps.state.record_scored(round_id, scored)
    except Exception as e:  # noqa: BLE001 - a lost write must not lose the scoring
        if not (is_lock_error(e) or isinstance(e, StateError)):
            raise
        deps.unsaved_scores[(round_id, competition, record.hotkey)] = (record.id, outcome)
        log.warning("round %d: could not store %s's losses yet (%s); kept in memory", round_id, record.hotkey, e)


def done_scores(deps: RoundDeps, round_id: int, competition: str,
                models: Mapping[str, ModelRecord]) -> dict[str, ScoreOutcome]:
    """The outcomes this round already has for the competition (stored, or held in memory).

    A stored outcome counts only while the hotkey's current commitment is the model it scored, and
    only when it is a verdict: a failure of ours (a lost cache, a broken worker) is scored again.
    """
    out: dict[str, ScoreOutcome] = {}
    for key, s in deps.state.scored_models(round_id, competition).items():
        if key in models and s.model_id == models[key].id and not is_own_fault(s.error):
            losses = DocLosses.from_bytes(s.losses) if s.losses is not None else None
            out[key] = ScoreOutcome(losses, s.error, s.detail, s.seconds, s.tokens_per_s)
    for (rid, cid, key), (model_id, outcome) in deps.unsaved_scores.items():
        if rid == round_id and cid == competition and key in models and models[key].id == model_id \
                and not is_own_fault(outcome.error):
            out[key] = outcome
    return out


def forget_unsaved(deps: RoundDeps, round_id: int) -> None:
    for key in [k for k in deps.unsaved_scores if k[0] == round_id]:
        del deps.unsaved_scores[key]


def round_to_resume(deps: RoundDeps, block: int) -> RoundRecord | None:
    """The newest round, if it stopped part-way recently enough to finish; older unfinished rounds are discarded."""
    state = deps.state
    unfinished = state.unfinished_round()
    if unfinished is not None and unfinished.seed is not None \
            and block - unfinished.block <= deps.config.resume_max_age_blocks:
        return unfinished
    discarded = state.discard_unfinished("interrupted and not resumed (too old, or a newer round ran)")
    if discarded:
        log.info("discarded unfinished round(s) %s", discarded)
        deps.unsaved_scores.clear()
    return None


def planned_keys(deps: RoundDeps, round_id: int, models: Mapping[str, ModelRecord]) -> dict[str, list[str]] | None:
    """A resumed round's models: those it planned whose commitment is still the current one.

    None when the round recorded no plan (it was killed between starting and planning): the caller
    plans it now, since a round that scores nothing must not set weights from the old EMA.
    """
    plan = deps.state.planned_models(round_id)
    if not plan:
        return None
    return {cid: [hk for hk, model_id in keys if hk in models and models[hk].id == model_id]
            for cid, keys in plan.items()}
