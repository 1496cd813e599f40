"""One validator round, as a chain of small steps that take and return typed values.

chain -> commitments -> schedule -> verified models -> documents -> losses -> wins -> weights -> chain

Each step is a function; `run_round` only sequences them and records what happened in the state.
A failure of one miner's model (bad files, crash, timeout) is recorded and costs that model only;
a failure of the validator's own dependencies (chain, data) fails the round, which the daemon
records and retries next time.
"""

from __future__ import annotations

import dataclasses
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
from subnet.data.sampling import seed_block
from subnet.validator.documents import (
    document_sources,
    inprocess_scorer,
    prepare_documents,
    worker_scorer,
)
from subnet.validator.preparation import clean_model_cache, prepare_models
from subnet.validator.round_progress import (
    done_scores,
    forget_unsaved,
    keep_score,
    planned_keys,
    round_to_resume,
)
from subnet.validator.agreement import record_agreement
from subnet.validator.in_force import advantage_at, entry_at, for_window, retire_models, retired_competitions
from subnet.validator.judging import Judgement, judge
from subnet.validator.resources import unpark_recovered
from subnet.validator.planning import plan, plan_window
from subnet.validator.standing import keep_standing, set_aside
from subnet.validator.state import ModelRecord, ValidatorState, is_lock_error
from subnet.validator.weighting import carried_ema, new_registrations
from subnet.validator.weights_setting import finish_weights, set_weights, weights_due

log = logging.getLogger(__name__)

__all__ = [  # the round's public names, re-exported so callers import them from one place
    "ChainSnapshot", "CompetitionOutcome", "ParsedCommitment", "ReadyModel", "RoundAborted", "RoundDeps",
    "RoundSummary", "ScoreJobSpec", "Scorer", "finish_weights", "inprocess_scorer", "parse_commitments",
    "plan", "plan_window", "prepare_documents", "prepare_models", "read_chain", "record_commitments", "run_round",
    "seed_block", "set_weights", "weights_due", "worker_scorer", "evaluate_competition",
]

# ----------------------------------------------------------------------------- the round


def evaluate_competition(
    deps: RoundDeps, round_id: int, competition: Competition, keys: Sequence[str],
    models: Mapping[str, ModelRecord], seed: str, window: int, done: Mapping[str, ScoreOutcome] | None = None,
) -> tuple[CompetitionOutcome, Judgement | None]:
    """Fetch, score and judge one competition's models on `window`'s documents (chosen by `seed`, the
    hash of its seed block). `done`: outcomes this round already has (a resume)."""
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
    # Verified this round: the content hashes copies are told by are known only now.
    models = {**models, **{k: dataclasses.replace(models[k], content_hash=r.content_hash or models[k].content_hash)
                           for k, r in ready.items()}}
    judgement = _judge(deps, competition, models, sorted(set(ready) | set(fetch_failed)), fetch_failed, scores,
                       window, round_data.digest, document_sources(docs, competition))
    ok = [s for s in scores.values() if s.losses is not None]
    outcome.scored = len(ok)
    outcome.tokens_per_s = float(np.mean([s.tokens_per_s for s in ok])) if ok else 0.0
    outcome.failed.update({k: v for k, v in judgement.failed.items() if k in scores and k not in outcome.failed})
    outcome.win_rates = {k: v for k, v in judgement.win_rates.items() if k in scores}  # this round's models
    outcome.copies = {k: v for k, v in judgement.copies.items() if k in scores}
    outcome.mean_loss = {r.hotkey: r.mean_loss for r in judgement.results if r.mean_loss is not None}
    deps.metrics.models_scored.labels(competition=competition.id).inc(len(ok) - sum(
        1 for k, s in done.items() if s.losses is not None))
    deps.metrics.tokens_per_s.labels(competition=competition.id).set(outcome.tokens_per_s)
    return outcome, judgement


def _judge(deps: RoundDeps, competition: Competition, models: Mapping[str, ModelRecord], keys: Sequence[str],
           fetch_failed: Mapping[str, str], scores: Mapping[str, ScoreOutcome], window: int, digest: str,
           groups) -> Judgement:
    """This window's evidence joins the stored windows; a window whose documents changed starts afresh."""
    state = deps.state
    before = state.window_scores(competition.id, window)
    if any(s.digest not in (None, digest) for s in before.values()):
        log.warning("window %d of %s: the documents differ from the ones scored earlier in it; its earlier "
                    "scores are dropped (not comparable)", window, competition.id)
        state.forget_window(competition.id, window)
        before = {}
    return judge(competition, models, keys, fetch_failed, scores, deps.config.confidence, window=window,
                 digest=digest, groups=groups, before=before, stored_windows=state.scored_windows(competition.id),
                 stored_pairs=state.window_pairs(competition.id), window_blocks=deps.config.seed_window_blocks,
                 advantage_at=advantage_at(deps, competition))


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
    """Read the chain, evaluate every competition on one window, commit the decisions, then set weights.

    A round that stopped part-way is resumed (same round, seed, documents and models) before a new one starts.
    """
    started = time.perf_counter()
    snapshot = read_chain(deps.chain)
    state = deps.state
    resumed = round_to_resume(deps, snapshot.block)
    models = record_commitments(state, parse_commitments(snapshot, deps.known_competitions))
    models = retire_models(deps, models, seed_block(snapshot.block, deps.config.seed_window_blocks))
    clean_model_cache(deps, models)
    if resumed is None:
        models = unpark_recovered(deps, models)  # our resources came back: retry the models they parked
    registered = {n.hotkey: n.uid for n in snapshot.metagraph.neurons}
    fresh = _fresh_registrations(state, registered)
    deps, round_id, block, seed, window, selected = _open_round(deps, snapshot, resumed, models, fresh)
    try:
        outcomes, judgements, n_due, n_evaluated = _evaluate_all(deps, round_id, selected, models, seed, window,
                                                                 resumed is not None)
        new_ema = _decided_weights(deps, judgements, outcomes, registered, fresh, window)
        done = list(judgements.values())
        evaluated = [models[k].id for cid, keys in selected.items() for k in keys
                     if k in models and k not in outcomes[cid].own_faults]
        state.complete_scoring(
            round_id, [r for j in done for r in j.results], [v for j in done for v in j.verdicts], new_ema,
            evaluated, registered=registered,
            evidence=[e for j in done for e in j.evidence], earned=[e for j in done for e in j.earned],
            n_due=n_due, n_evaluated=n_evaluated, window_scores=[w for j in done for w in j.window_scores],
            window_pairs=[p for j in done for p in j.window_pairs], decided=set(judgements))
        forget_unsaved(deps, round_id)
    except BaseException as e:
        _stop_round(deps, round_id, e)
        raise
    _apply_retention(deps)
    weights_status = finish_weights(deps, round_id, snapshot.metagraph, snapshot.block, window=window)
    _record_agreement(deps, snapshot)
    return RoundSummary(round_id, block, seed, outcomes, weights_status, time.perf_counter() - started,
                        resumed=resumed is not None, n_due=n_due, n_evaluated=n_evaluated, window=window)


def _open_round(deps: RoundDeps, snapshot: ChainSnapshot, resumed, models: Mapping[str, ModelRecord],
                fresh: set[str]):
    """The round to run: the stopped one (its window, plan and schedule entry), or a new one on the window
    `plan_window` picks. Returns (deps for the entry in force, round id, block, seed, window, selected)."""
    state = deps.state
    chain_weights = snapshot.metagraph.incentive_by_hotkey()
    if resumed is not None:
        round_id, block, seed = resumed.id, resumed.block, resumed.seed
        window = resumed.window if resumed.window is not None else seed_block(block, deps.config.seed_window_blocks)
        deps = for_window(deps, window)  # the entry in force at the round's window, as when it started
        state.resume_round(round_id)
        log.info("resuming round %d (block %d, window %d) where it stopped", round_id, block, window)
        selected = planned_keys(deps, round_id, models)
        if selected is None:  # killed between its start and its plan: plan it now, on its own window
            schedule = plan(state, models, block, deps, fresh, window=window, chain_weights=chain_weights)
            selected = {cid: list(keys) for cid, keys in schedule.selected.items()}
            state.record_plan(round_id, {cid: [(k, models[k].id) for k in keys] for cid, keys in selected.items()})
        return deps, round_id, block, seed, window, selected
    block = snapshot.block
    current = seed_block(block, deps.config.seed_window_blocks)
    entry = entry_at(deps, current)
    deps = for_window(deps, current)  # backfill stays within this entry (plan_window's `earliest`)
    window, schedule = plan_window(state, models, block, deps, fresh, chain_weights,
                                   earliest=entry.start_block if entry is not None else 0)
    seed = deps.chain.block_hash(window)
    round_id = state.start_round(block, seed, window)
    selected = {cid: list(keys) for cid, keys in schedule.selected.items()}
    state.record_plan(round_id, {cid: [(k, models[k].id) for k in keys] for cid, keys in selected.items()})
    log.info("round %d started at block %d (window %d): %d model(s) to score", round_id, block, window,
             sum(len(k) for k in selected.values()))
    return deps, round_id, block, seed, window, selected


def _decided_weights(deps: RoundDeps, judgements, outcomes, registered: Mapping[str, int], fresh: set[str],
                     window: int) -> dict[str, dict[str, float]]:
    """Each competition's stored weights after the round: its decision, unless our faults hold them."""
    state, new_ema = deps.state, {}
    for cid in sorted(deps.competitions):
        previous = carried_ema(state.ema(cid), registered, fresh)
        judgement = judgements.get(cid)
        if judgement is None or judgement.champion is None:
            new_ema[cid] = keep_standing(previous, previous, outcomes[cid])  # the last decision stands
            continue
        decided = {k: w for k, w in judgement.weights.items() if k in registered and w > 0}
        new_ema[cid] = outcomes[cid].ema = keep_standing(decided, previous, outcomes[cid])  # ours move nothing
    new_ema.update({cid: {} for cid in retired_competitions(deps, window) if state.ema(cid)})
    return new_ema


def _evaluate_all(deps: RoundDeps, round_id: int, selected: Mapping[str, Sequence[str]],
                  models: Mapping[str, ModelRecord], seed: str, window: int, resumed: bool):
    outcomes, judgements, results = {}, {}, []
    for cid in sorted(deps.competitions):
        keys = selected.get(cid, ())
        done = done_scores(deps, round_id, cid, models) if resumed else {}
        outcome, judgement = evaluate_competition(deps, round_id, deps.competitions[cid], keys, models, seed,
                                                  window, done)
        outcomes[cid] = outcome
        if judgement is not None:
            judgements[cid] = judgement
            results += judgement.results
    n_due = sum(len(keys) for keys in selected.values())
    n_evaluated = _count_verdicts(deps.state, results, [models[k].id for keys in selected.values() for k in keys])
    return outcomes, judgements, n_due, n_evaluated


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


def _record_agreement(deps: RoundDeps, snapshot: ChainSnapshot) -> None:
    try:
        record_agreement(deps.state, deps.metrics, snapshot.metagraph, snapshot.block, deps.config.seed_window_blocks)
    except Exception as e:  # noqa: BLE001 - a report must never fail a round
        log.warning("agreement not assessed this round: %s", e)


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
