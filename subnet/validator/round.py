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
from typing import Mapping, Sequence

import numpy as np

from subnet.competitions import Competition
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
from subnet.validator.scheduler import Schedule, SchedulingCandidate, schedule_round
from subnet.validator.state import ModelRecord, ValidatorState
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
    models: Mapping[str, ModelRecord], seed: str, block: int,
) -> tuple[CompetitionOutcome, Judgement | None]:
    outcome = CompetitionOutcome(competition.id)
    ready, fetch_failed = prepare_models(deps, models, keys, competition)
    outcome.failed.update(fetch_failed)
    if not ready:  # nothing to score; the failures are already recorded on the models
        return outcome, None
    round_data, docs = prepare_documents(deps, seed, competition, round_id)  # records the data's identity
    outcome.n_docs = len(docs)
    if deps.stop.is_set():
        raise RoundAborted("stop requested before scoring")
    jobs = [ScoreJobSpec(k, str(ready[k].model_dir)) for k in sorted(ready)]
    # A stop request during scoring lets it finish: the results are worth keeping, and the rest is quick.
    scores = deps.scorer(jobs, competition, docs) if jobs else {}
    for key, s in scores.items():
        if s.error.startswith("rejected:"):  # the loader refused it: permanent for this commitment
            reason = s.error.split(":", 1)[1] or "rejected"
            deps.state.mark_failed(models[key].id, reason, s.detail)
            deps.metrics.failures.labels(reason=reason).inc()
        elif s.error:
            deps.metrics.failures.labels(reason=s.error).inc()
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
    deps.metrics.models_scored.labels(competition=competition.id).inc(len(ok))
    deps.metrics.tokens_per_s.labels(competition=competition.id).set(outcome.tokens_per_s)
    return outcome, judgement


def run_round(deps: RoundDeps) -> RoundSummary:
    """Read the chain, evaluate every competition, commit results with the EMA, then set weights."""
    started = time.perf_counter()
    snapshot = read_chain(deps.chain)
    seed = deps.chain.block_hash(seed_block(snapshot.block, deps.config.seed_window_blocks))
    state = deps.state
    round_id = state.start_round(snapshot.block, seed)
    log.info("round %d started at block %d (seed block %d)", round_id, snapshot.block,
             seed_block(snapshot.block, deps.config.seed_window_blocks))
    try:
        models = record_commitments(state, parse_commitments(snapshot, deps.known_competitions))
        clean_model_cache(deps, models)
        registered = {n.hotkey: n.uid for n in snapshot.metagraph.neurons}
        fresh = _fresh_registrations(state, registered)
        schedule = plan(state, models, snapshot.block, deps, fresh)
        outcomes, results, verdicts, new_ema, evaluated, evidence, earned = {}, [], [], {}, [], [], []
        for cid in sorted(deps.competitions):
            competition = deps.competitions[cid]
            keys = schedule.selected.get(cid, ())
            outcome, judgement = evaluate_competition(deps, round_id, competition, keys, models, seed, snapshot.block)
            outcomes[cid] = outcome
            # Deregistered hotkeys leave the EMA; re-registered ones (and new hotkeys at reused uids) start at 0.
            previous = carried_ema(state.ema(cid), registered, fresh)
            if judgement is None:
                new_ema[cid] = previous
                continue
            results += judgement.results
            verdicts += judgement.verdicts
            evidence += judgement.evidence
            earned += judgement.earned
            new_ema[cid] = smoothed_weights(judgement.win_rates, previous, set(registered), deps.config,
                                            excluded=set(judgement.copies), zeroed=set(outcome.failed))
            outcome.ema = new_ema[cid]
            evaluated += [models[k].id for k in keys if k in models]
        state.complete_scoring(round_id, results, verdicts, new_ema, evaluated, registered=registered,
                               evidence=evidence, earned=earned)
    except BaseException as e:
        status = st.ROUND_DISCARDED if isinstance(e, (RoundAborted, KeyboardInterrupt)) else st.ROUND_FAILED
        state.finish_round(round_id, status, f"{type(e).__name__}: {e}"[:2000])
        raise
    weights_status = finish_weights(deps, round_id, snapshot.metagraph, snapshot.block)
    return RoundSummary(round_id, snapshot.block, seed, outcomes, weights_status, time.perf_counter() - started)


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
