"""One validator round, as a chain of small steps that take and return typed values.

chain -> commitments -> schedule -> verified models -> documents -> losses -> wins -> weights -> chain

Each step is a function; `run_round` only sequences them and records what happened in the state.
A failure of one miner's model (bad files, crash, timeout) is recorded and costs that model only;
a failure of the validator's own dependencies (chain, data) fails the round, which the daemon
records and retries next time.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from subnet.competitions import Competition
from subnet.eval.types import ScoreOutcome
from subnet.validator import state as st
from subnet.validator.commitments import (
    ChainSnapshot,
    ParsedCommitment,
    parse_commitments,
    read_chain,
    record_commitments,
)
from subnet.validator.context import (
    CompetitionOutcome,
    ReadyModel,
    RoundAborted,
    RoundDeps,
    RoundSummary,
    ScoreJobSpec,
    Scorer,
)
from subnet.validator.documents import (
    document_sources,
    inprocess_scorer,
    prepare_documents,
    seed_block,
    worker_scorer,
)
from subnet.validator.preparation import clean_model_cache, prepare_models
from subnet.validator.progress import (
    done_scores,
    forget_unsaved,
    keep_score,
    planned_keys,
    round_to_resume,
)
from subnet.validator.resources import unpark_recovered
from subnet.validator.scheduler import Schedule, SchedulingCandidate, schedule_round
from subnet.validator.standing import keep_standing, set_aside
from subnet.validator.state import ModelRecord, ValidatorState, is_lock_error
from subnet.validator.weighting import (
    Judgement,
    carried_ema,
    judge,
    new_registrations,
    smoothed_weights,
)
from subnet.validator.weights_setting import finish_weights, set_weights, weights_due

log = logging.getLogger(__name__)

__all__ = [  # the round's public names, re-exported so callers import them from one place
    "ChainSnapshot", "CompetitionOutcome", "ParsedCommitment", "ReadyModel", "RoundAborted", "RoundDeps",
    "RoundSummary", "ScoreJobSpec", "Scorer", "finish_weights", "inprocess_scorer", "parse_commitments",
    "plan", "prepare_documents", "prepare_models", "read_chain", "record_commitments", "run_round",
    "seed_block", "set_weights", "weights_due", "worker_scorer", "evaluate_competition",
]

# ----------------------------------------------------------------------------- 3: schedule


def plan(state: ValidatorState, models: Mapping[str, ModelRecord], block: int, deps: RoundDeps,
         fresh: set[str] = frozenset()) -> Schedule:
    """`fresh` hotkeys (re-registered since the last round) are planned without their stale EMA."""
    cfg = deps.config
    weights = {cid: {k: v for k, v in state.ema(cid).items() if k not in fresh} for cid in deps.competitions}
    candidates = [
        SchedulingCandidate(
            key=m.hotkey, competition=m.competition, commit_block=m.block,
            weight=weights[m.competition].get(m.hotkey, 0.0), last_evaluated_round=m.last_round,
        )
        for m in models.values()
        if m.competition in deps.competitions and m.status in (st.MODEL_PENDING, st.MODEL_VERIFIED, st.MODEL_RETRY)
        and not m.parked()  # repeated transient failures: put off with backoff (state.models.park_seconds)
    ]
    return schedule_round(
        candidates, block, cfg.max_models_per_round, window=cfg.seed_window_blocks,
        margin=cfg.eligibility_margin_blocks, min_revisits=cfg.min_revisits_per_round,
    )


# ----------------------------------------------------------------------------- the round


def evaluate_competition(
    deps: RoundDeps, round_id: int, competition: Competition, keys: Sequence[str],
    models: Mapping[str, ModelRecord], seed: str, block: int, done: Mapping[str, ScoreOutcome] | None = None,
) -> tuple[CompetitionOutcome, Judgement | None]:
    """Fetch, score and judge one competition's models. `done`: outcomes this round already has (a resume)."""
    outcome = CompetitionOutcome(competition.id)
    done = {k: v for k, v in (done or {}).items() if k in keys}
    ready, fetch_failed = _prepare(deps, models, [k for k in keys if k not in done], competition)
    for key in done:  # scored before the stop: verified then, judged now with the rest
        record = models[key]
        ready[key] = ReadyModel(record, Path(record.model_dir or ""), record.content_hash or "")
    if not ready:  # nothing to score; the failures are already recorded on the models
        outcome.failed.update(fetch_failed)
        set_aside(outcome, ready, fetch_failed, {}, models)  # our faults are no verdict (standing.py)
        return outcome, None
    recorded_digest = _recorded_digest(deps, round_id, competition.id) if done else None
    round_data, docs = prepare_documents(deps, seed, competition, round_id)  # records the data's identity
    if done and recorded_digest not in (None, round_data.digest):
        log.warning("round %d: the documents changed since the round started; scoring every model again", round_id)
        again, again_failed = _prepare(deps, models, sorted(done), competition)
        ready = {k: v for k, v in ready.items() if k not in done} | again
        fetch_failed.update(again_failed)
        done = {}
    outcome.failed.update(fetch_failed)
    outcome.n_docs = len(docs)
    scores: dict[str, ScoreOutcome] = dict(done)
    for key in sorted(k for k in ready if k not in scores):
        # A stop request ends the round after the model in progress; its scores so far are kept.
        if deps.stop.is_set():
            raise RoundAborted("stop requested during scoring")
        scored = deps.scorer([ScoreJobSpec(key, str(ready[key].model_dir))], competition, docs)
        scores[key] = scored.get(key) or ScoreOutcome(None, "error", "the scorer returned nothing for this model")
        if deps.stop.is_set() and scores[key].error and not scores[key].error.startswith("rejected:"):
            # Failed while we were stopping (a signal may have reached the worker): no verdict; resumed later.
            raise RoundAborted(f"stop requested while {key} was scored ({scores[key].error})")
        _record_outcome(deps, round_id, competition, models[key], scores[key])
    ready, fetch_failed, scores = set_aside(outcome, ready, fetch_failed, scores, models)  # ours: no evidence
    judgement = judge(competition, models, ready, fetch_failed, scores, len(docs), block, deps.config.confidence,
                      groups=document_sources(docs, competition), evidence=deps.state.pair_evidence(competition.id),
                      earned=deps.state.earned_advantages(competition.id), previous_weights=deps.state.ema(competition.id))
    ok = [s for s in scores.values() if s.losses is not None]
    outcome.scored = len(ok)
    outcome.tokens_per_s = float(np.mean([s.tokens_per_s for s in ok])) if ok else 0.0
    outcome.failed.update({k: v for k, v in judgement.failed.items() if k not in outcome.failed})
    outcome.win_rates = judgement.win_rates
    outcome.copies = judgement.copies
    outcome.mean_loss = {r.hotkey: r.mean_loss for r in judgement.results if r.mean_loss is not None}
    deps.metrics.models_scored.labels(competition=competition.id).inc(len(ok) - sum(
        1 for k, s in done.items() if s.losses is not None))
    deps.metrics.tokens_per_s.labels(competition=competition.id).set(outcome.tokens_per_s)
    return outcome, judgement


def _prepare(deps: RoundDeps, models: Mapping[str, ModelRecord], keys: Sequence[str],
             competition: Competition) -> tuple[dict[str, ReadyModel], dict[str, str]]:
    """Fetch and check; preparation records and counts every failure itself (once, whatever its cause)."""
    return prepare_models(deps, models, keys, competition)


def _record_outcome(deps: RoundDeps, round_id: int, competition: Competition, record: ModelRecord,
                    score: ScoreOutcome) -> None:
    """Keep one model's outcome at once; a loader's refusal is a permanent verdict on the commitment."""
    keep_score(deps, round_id, competition.id, record, score)
    if score.error.startswith("rejected:"):  # the loader refused it: permanent for this commitment
        reason = score.error.split(":", 1)[1] or "rejected"
        deps.state.mark_failed(record.id, reason, score.detail)
        deps.metrics.failures.labels(reason=reason).inc()
    elif score.error:
        deps.metrics.failures.labels(reason=score.error).inc()


def _recorded_digest(deps: RoundDeps, round_id: int, competition: str) -> str | None:
    for row in deps.state.round_data(round_id):
        if row.get("competition") == competition:
            return row.get("digest")
    return None


def run_round(deps: RoundDeps) -> RoundSummary:
    """Read the chain, evaluate every competition, commit results with the EMA, then set weights.

    A round that stopped part-way is resumed (same round, seed, documents and models) before a new one starts.
    """
    started = time.perf_counter()
    snapshot = read_chain(deps.chain)
    state = deps.state
    resumed = round_to_resume(deps, snapshot.block)
    if resumed is not None:
        round_id, block, seed = resumed.id, resumed.block, resumed.seed
        state.resume_round(round_id)
        log.info("resuming round %d (block %d, seed %s) where it stopped", round_id, block, seed)
    else:
        block = snapshot.block
        seed = deps.chain.block_hash(seed_block(block, deps.config.seed_window_blocks))
        round_id = state.start_round(block, seed)
        log.info("round %d started at block %d (seed block %d)", round_id, block,
                 seed_block(block, deps.config.seed_window_blocks))
    try:
        models = record_commitments(state, parse_commitments(snapshot, deps.known_competitions))
        clean_model_cache(deps, models)
        models = unpark_recovered(deps, models) if resumed is None else models  # our resources came back
        registered = {n.hotkey: n.uid for n in snapshot.metagraph.neurons}
        fresh = _fresh_registrations(state, registered)
        selected = planned_keys(deps, round_id, models) if resumed is not None else None
        if selected is None:  # a new round, or one killed before its plan was recorded
            selected = {cid: list(keys) for cid, keys in plan(state, models, block, deps, fresh).selected.items()}
            state.record_plan(round_id, {cid: [(k, models[k].id) for k in keys] for cid, keys in selected.items()})
        outcomes, results, verdicts, new_ema, evaluated, evidence, earned = {}, [], [], {}, [], [], []
        for cid in sorted(deps.competitions):
            competition = deps.competitions[cid]
            keys = selected.get(cid, ())
            done = done_scores(deps, round_id, cid, models) if resumed is not None else {}
            outcome, judgement = evaluate_competition(deps, round_id, competition, keys, models, seed, block, done)
            outcomes[cid] = outcome
            # Deregistered hotkeys leave the EMA; re-registered ones (and new hotkeys at reused uids) start at 0.
            previous = carried_ema(state.ema(cid), registered, fresh)
            if judgement is None:
                new_ema[cid] = keep_standing(previous, previous, outcome)
                continue
            results += judgement.results
            verdicts += judgement.verdicts
            evidence += judgement.evidence
            earned += judgement.earned
            new_ema[cid] = smoothed_weights(judgement.win_rates, previous, set(registered), deps.config,
                                            excluded=set(judgement.copies), zeroed=set(outcome.failed))
            new_ema[cid] = keep_standing(new_ema[cid], previous, outcome)  # our faults move no weight
            outcome.ema = new_ema[cid]
            evaluated += [models[k].id for k in keys if k in models and k not in outcome.own_faults]
        n_due = sum(len(keys) for keys in selected.values())
        n_evaluated = _count_verdicts(state, results, [models[k].id for keys in selected.values() for k in keys])
        state.complete_scoring(round_id, results, verdicts, new_ema, evaluated, registered=registered,
                               evidence=evidence, earned=earned, n_due=n_due, n_evaluated=n_evaluated)
        forget_unsaved(deps, round_id)
    except BaseException as e:
        _stop_round(deps, round_id, e)
        raise
    _apply_retention(deps)
    weights_status = finish_weights(deps, round_id, snapshot.metagraph, snapshot.block)
    return RoundSummary(round_id, block, seed, outcomes, weights_status, time.perf_counter() - started,
                        resumed=resumed is not None, n_due=n_due, n_evaluated=n_evaluated)


def _count_verdicts(state: ValidatorState, results: Sequence, due_ids: Sequence[int]) -> int:
    """Due models that got a verdict: scored with losses, or failed for good (what only the miner controls)."""
    scored = {r.model_id for r in results if r.losses is not None}
    failed = {m.id for m in state.models(st.MODEL_FAILED)}
    return sum(1 for i in set(due_ids) if i in scored or i in failed)


def _stop_round(deps: RoundDeps, round_id: int, error: BaseException) -> None:
    """Record why the round stopped. A stop, a kill or a locked database leaves it resumable."""
    resumable = isinstance(error, (RoundAborted, KeyboardInterrupt)) or is_lock_error(error)
    status = st.ROUND_INTERRUPTED if resumable else st.ROUND_FAILED
    try:
        deps.state.finish_round(round_id, status, f"{type(error).__name__}: {error}"[:2000])
    except Exception as e:  # noqa: BLE001 - still locked: the round stays `started`, which resumes the same way
        log.warning("round %d: could not record its status (%s)", round_id, e)
    if not resumable:
        forget_unsaved(deps, round_id)


def _apply_retention(deps: RoundDeps) -> None:
    cfg = deps.config
    try:
        deps.state.prune(cfg.keep_loss_rounds, cfg.keep_summary_rounds)
    except Exception as e:  # noqa: BLE001 - retention can wait for the next round
        log.warning("retention skipped this round: %s", e)


def _fresh_registrations(state: ValidatorState, registered: Mapping[str, int]) -> set[str]:
    """Hotkeys registered (again, or at another uid) since the last recorded round; logs departures too."""
    before = state.current_registrations()
    previous = None if before is None else {hk: r.uid for hk, r in before.items()}
    fresh = new_registrations(previous, registered)
    if previous is not None:
        left = sorted(set(previous) - set(registered))
        if left:
            log.info("deregistered since the last round (their EMA is dropped): %s",
                     ", ".join(f"{hk} (uid {previous[hk]})" for hk in left))
        returning = sorted(hk for hk in fresh if hk in previous or state.registrations(hk))
        if returning:
            log.info("re-registered or moved uid (their EMA starts afresh): %s",
                     ", ".join(f"{hk} (uid {registered[hk]})" for hk in returning))
    return fresh
