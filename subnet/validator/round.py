"""One validator round, as a chain of small steps that take and return typed values.

chain -> commitments -> schedule -> verified models -> documents -> losses -> wins -> weights -> chain

Each step is a function; `run_round` only sequences them and records what happened in the state.
A failure of one miner's model (bad files, crash, timeout) is recorded and costs that model only;
a failure of the validator's own dependencies (chain, data) fails the round, which the daemon
records and retries next time.
"""

from __future__ import annotations

import logging
import math
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from subnet.chain.base import Chain, ChainError, Commitment, Metagraph
from subnet.competitions import Competition
from subnet.data.types import DocumentSource, RoundData, TokenizedDocuments
from subnet.eval.types import ScoreOutcome
from subnet.hub.errors import ModelRejected
from subnet.hub.model_ref import ModelRef, ModelRefError
from subnet.hub.store import ModelStore, StoreError
from subnet.validator import state as st
from subnet.validator.config import ValidatorConfig
from subnet.validator.metrics import ValidatorMetrics
from subnet.validator.scheduler import Schedule, SchedulingCandidate, schedule_round
from subnet.validator.state import ModelRecord, ValidatorState
from subnet.validator.weighting import (
    Judgement,
    carried_ema,
    judge,
    new_registrations,
    smoothed_weights,
    uid_weights,
)

log = logging.getLogger(__name__)

# How often a store that answers "not found"/"forbidden" is asked again before the model fails for good.
MAX_STORE_ATTEMPTS = 3
# set_weights refusals that an immediate retry cannot change: the next round tries again.
NOT_RETRIED_CODES = frozenset({"rate_limited", "not_registered", "rejected", "no_permit", "no_wallet",
                               "invalid_weights"})

Scorer = Callable[[Sequence["ScoreJobSpec"], Competition, TokenizedDocuments], dict[str, ScoreOutcome]]


class RoundAborted(RuntimeError):
    """The daemon was asked to stop; the round is discarded and will not count."""


@dataclass(frozen=True)
class ChainSnapshot:
    block: int
    metagraph: Metagraph
    commitments: tuple[Commitment, ...]


@dataclass(frozen=True)
class ParsedCommitment:
    hotkey: str
    uid: int
    block: int
    data: str
    ref: ModelRef | None
    error: str | None


@dataclass(frozen=True)
class ReadyModel:
    """A scheduled model whose files are on disk, verified and within the competition's constraints."""

    record: ModelRecord
    model_dir: Path
    content_hash: str


@dataclass(frozen=True)
class ScoreJobSpec:
    key: str
    model_dir: str


@dataclass
class CompetitionOutcome:
    competition: str
    n_docs: int = 0
    scored: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    win_rates: dict[str, float] = field(default_factory=dict)
    ema: dict[str, float] = field(default_factory=dict)
    mean_loss: dict[str, float] = field(default_factory=dict)
    copies: dict[str, str] = field(default_factory=dict)
    tokens_per_s: float = 0.0
    error: str | None = None


@dataclass
class RoundSummary:
    round_id: int
    block: int
    seed: str
    competitions: dict[str, CompetitionOutcome]
    weights_status: str
    seconds: float = 0.0


@dataclass
class RoundDeps:
    """Everything a round talks to. Built once by the daemon; tests swap in local stand-ins."""

    chain: Chain
    store: ModelStore
    state: ValidatorState
    config: ValidatorConfig
    competitions: Mapping[str, Competition]  # the ones this validator evaluates
    known_competitions: Mapping[str, Competition]  # every competition a commitment may name
    source_for: Callable[[Competition], DocumentSource]
    scorer: Scorer
    metrics: ValidatorMetrics = field(default_factory=ValidatorMetrics)
    stop: threading.Event = field(default_factory=threading.Event)
    tokenizers: dict = field(default_factory=dict)  # tokenizer ref -> loaded tokenizer (kept across rounds)


# ----------------------------------------------------------------------------- 1-2: chain and commitments


def read_chain(chain: Chain) -> ChainSnapshot:
    """One metagraph read and one bulk commitments read; the block is the metagraph's."""
    metagraph = chain.metagraph()
    commitments = tuple(chain.commitments())
    return ChainSnapshot(block=int(metagraph.block), metagraph=metagraph, commitments=commitments)


def parse_commitments(snapshot: ChainSnapshot, known: Mapping[str, Competition]) -> list[ParsedCommitment]:
    """Commitments of registered hotkeys, parsed; an unparsable one keeps its reason."""
    uids = {n.hotkey: n.uid for n in snapshot.metagraph.neurons}
    parsed = []
    for c in sorted(snapshot.commitments, key=lambda c: (c.block, c.hotkey)):
        if c.hotkey not in uids:
            continue
        try:
            ref, error = ModelRef.parse(c.data, known), None
        except ModelRefError as e:
            ref, error = None, str(e)
        parsed.append(ParsedCommitment(c.hotkey, uids[c.hotkey], c.block, c.data, ref, error))
    return parsed


def record_commitments(state: ValidatorState, parsed: Sequence[ParsedCommitment]) -> dict[str, ModelRecord]:
    """Store every sighting; returns each hotkey's current model record."""
    current = {}
    for p in parsed:
        competition = p.ref.competition_id if p.ref else None
        current[p.hotkey] = state.upsert_commitment(p.hotkey, p.uid, p.data, p.block, competition, p.error)
    return current


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
    ]
    return schedule_round(
        candidates, block, cfg.max_models_per_round, window=cfg.seed_window_blocks,
        margin=cfg.eligibility_margin_blocks, min_revisits=cfg.min_revisits_per_round,
    )


# ----------------------------------------------------------------------------- 4: models on disk


def prepare_models(
    deps: RoundDeps, models: Mapping[str, ModelRecord], keys: Sequence[str], competition: Competition
) -> tuple[dict[str, ReadyModel], dict[str, str]]:
    """Fetch (or reuse) and check each scheduled model. Returns (ready, failed: key -> reason)."""
    from subnet.hub.download import fetch_verified, verified_directory_hash
    from subnet.hub.hashing import directory_hash
    from subnet.hub.loading import check_model_dir

    ready: dict[str, ReadyModel] = {}
    failed: dict[str, str] = {}
    disk_ok = _free_bytes(deps.config.models_dir) >= deps.config.min_free_disk_bytes
    for key in keys:
        if deps.stop.is_set():
            raise RoundAborted("stop requested while fetching models")
        record = models[key]
        ref = ModelRef.parse(record.ref)
        reusable = record.status == st.MODEL_VERIFIED and record.model_dir and Path(record.model_dir).is_dir()
        if not reusable and not disk_ok:
            deps.state.mark_failed(record.id, "disk_full", "free disk below the floor", transient=True)
            failed[key] = "disk_full"
            continue
        try:
            path = fetch_verified(deps.store, ref, record.hotkey, competition, deps.config.models_dir)
            content_hash = verified_directory_hash(path) or directory_hash(path)
            check_model_dir(path, competition)
        except ModelRejected as e:
            deps.state.mark_failed(record.id, e.reason, e.detail)
            failed[key] = e.reason
            deps.metrics.failures.labels(reason=e.reason).inc()
            continue
        except StoreError as e:
            permanent = not e.transient and record.attempts + 1 >= MAX_STORE_ATTEMPTS
            reason = "store_error" if permanent else "store_unavailable"
            deps.state.mark_failed(record.id, reason, str(e), transient=not permanent)
            failed[key] = reason
            deps.metrics.failures.labels(reason=reason).inc()
            continue
        except OSError as e:  # our own disk; the model is not at fault
            deps.state.mark_failed(record.id, "fetch_io_error", str(e), transient=True)
            failed[key] = "fetch_io_error"
            continue
        if record.status != st.MODEL_VERIFIED or record.model_dir != str(path) or record.content_hash != content_hash:
            deps.state.mark_verified(record.id, str(path), content_hash)
        ready[key] = ReadyModel(record, path, content_hash)
    return ready, failed


def clean_model_cache(deps: RoundDeps, models: Mapping[str, ModelRecord]) -> list[Path]:
    """Delete downloaded models no current commitment refers to, oldest first, down to the free-disk floor."""
    from subnet.hub.download import model_cache_dir, remove_unreferenced

    keep = set()
    for m in models.values():
        if m.status in (st.MODEL_VERIFIED, st.MODEL_PENDING, st.MODEL_RETRY) and m.competition:
            try:
                keep.add(model_cache_dir(deps.config.models_dir, m.hotkey, ModelRef.parse(m.ref).commit))
            except (ValueError, ModelRefError):
                continue
    removed = remove_unreferenced(deps.config.models_dir, keep, deps.config.min_free_disk_bytes)
    if removed:
        gone = {str(p) for p in removed}
        for m in deps.state.models(st.MODEL_VERIFIED):
            if m.model_dir in gone:
                deps.state.forget_model_dir(m.id)
    return removed


def _free_bytes(path: Path) -> int:
    path.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(path).free


# ----------------------------------------------------------------------------- 5: documents and losses


def seed_block(block: int, window: int) -> int:
    """Every validator derives the same seed within a window: the hash of its first block."""
    return (block // window) * window


def prepare_documents(deps: RoundDeps, seed: str, competition: Competition) -> tuple[RoundData, TokenizedDocuments]:
    from subnet.data.sampling import build_round, tokenize_documents
    from subnet.data.tokenizer import load_tokenizer

    round_data = build_round(deps.source_for(competition), seed, competition)
    if not round_data.documents:
        raise RuntimeError(
            f"data source returned no documents for {competition.id} "
            f"({len(round_data.failed_pages)} page(s) failed: {list(round_data.failed_pages)[:3]})"
        )
    tokenizer = deps.tokenizers.get(competition.tokenizer)
    if tokenizer is None:
        tokenizer = deps.tokenizers[competition.tokenizer] = load_tokenizer(competition.tokenizer)
    docs = tokenize_documents(round_data.documents, tokenizer, competition.max_seq_len, round_data.digest)
    return round_data, docs


def worker_scorer(device: str, timeout_s: float) -> Scorer:
    """One spawned process per model: a crash, hang or OOM costs only that model."""

    def score(jobs: Sequence[ScoreJobSpec], competition: Competition, docs: TokenizedDocuments):
        from subnet.eval.worker import ScoreJob, score_models

        return score_models([ScoreJob(j.key, j.model_dir) for j in jobs], competition, docs, device=device,
                            timeout_s=timeout_s)

    return score


def inprocess_scorer(device: str) -> Scorer:
    """Scores in this process (devnet, tests): faster to start, no isolation from a hostile model."""

    def score(jobs: Sequence[ScoreJobSpec], competition: Competition, docs: TokenizedDocuments):
        from subnet.eval.engine import compute_losses
        from subnet.hub.loading import load_model

        out = {}
        for job in jobs:
            start = time.perf_counter()
            try:
                model = load_model(job.model_dir, competition, device=device)
                losses = compute_losses(model, docs, device=device)
                del model
            except ModelRejected as e:
                out[job.key] = ScoreOutcome(None, f"rejected:{e.reason}", e.detail, time.perf_counter() - start)
                continue
            except Exception as e:  # noqa: BLE001 - one model's failure must not stop the round
                out[job.key] = ScoreOutcome(None, "crashed", f"{type(e).__name__}: {e}", time.perf_counter() - start)
                continue
            seconds = time.perf_counter() - start
            out[job.key] = ScoreOutcome(losses, "", "", seconds, float(losses.n_tokens.sum()) / max(seconds, 1e-9))
        return out

    return score


# ----------------------------------------------------------------------------- 7: set weights


def weights_due(chain: Chain, state: ValidatorState, block: int, config: ValidatorConfig) -> tuple[bool, str]:
    last = state.last_weights_success_block()
    if last is None:
        return True, ""
    interval = max(config.weights_interval_blocks, chain.weights_rate_limit())
    if block - last < interval:
        return False, f"last weights at block {last}; next after block {last + interval}"
    return True, ""


def set_weights(
    deps: RoundDeps, round_id: int, uids: Sequence[int], weights: Sequence[float], block: int
) -> str:
    """At most one success per round: intent is stored before each call, the outcome after.

    Returns the round's final status (weights_set or done) after bounded retries.
    """
    cfg, state, chain = deps.config, deps.state, deps.chain
    if not uids or any(not math.isfinite(w) for w in weights) or sum(weights) <= 0:
        why = "weights are not finite" if any(not math.isfinite(w) for w in weights) else "weights are all zero"
        state.record_weights_skipped(round_id, block, uids, weights, why)
        deps.metrics.weight_attempts.labels(result="skipped").inc()
        log.warning("round %d: not setting weights: %s", round_id, why)
        return st.ROUND_DONE
    if not cfg.set_weights:
        log.info("round %d: --dont-set-weights: would set %s", round_id, dict(zip(uids, weights)))
        return st.ROUND_DONE
    due, why = weights_due(chain, state, block, cfg)
    if not due:
        log.info("round %d: weights not due (%s)", round_id, why)
        return st.ROUND_DONE
    for attempt in range(max(1, cfg.weights_retries)):
        if state.weights_sent(round_id):
            return st.ROUND_WEIGHTS_SET
        attempt_id = state.record_weights_intent(round_id, block, uids, weights)
        try:
            from subnet import VERSION_KEY

            result = chain.set_weights(list(uids), list(weights), VERSION_KEY)
        except ChainError as e:
            state.record_weights_outcome(attempt_id, False, f"{e.code}: {e}")
            deps.metrics.weight_attempts.labels(result="error").inc()
            code = e.code
        else:
            state.record_weights_outcome(attempt_id, result.success, result.message or result.code, result.block)
            deps.metrics.weight_attempts.labels(result="success" if result.success else "failed").inc()
            if result.success:
                return st.ROUND_WEIGHTS_SET
            code = result.code
        if code == "no_permit":
            log.error("round %d: the chain refused weights: this validator's hotkey has no validator permit "
                      "(too little stake, or not among the subnet's top validators); not retrying this round",
                      round_id)
            break
        log.warning("round %d: set_weights attempt %d failed (%s)", round_id, attempt + 1, code)
        if code in NOT_RETRIED_CODES or deps.stop.is_set():
            break
        deps.stop.wait(min(2.0**attempt, 10.0))
    return st.ROUND_DONE


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
    round_data, docs = prepare_documents(deps, seed, competition)
    deps.state.record_round_data(round_id, competition.id, seed, round_data.page_ids, round_data.digest,
                                 len(docs), round_data.failed_pages)
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
    judgement = judge(competition, models, ready, fetch_failed, scores, len(docs), block, deps.config.confidence)
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
    try:
        models = record_commitments(state, parse_commitments(snapshot, deps.known_competitions))
        clean_model_cache(deps, models)
        registered = {n.hotkey: n.uid for n in snapshot.metagraph.neurons}
        fresh = _fresh_registrations(state, registered)
        schedule = plan(state, models, snapshot.block, deps, fresh)
        outcomes, results, verdicts, new_ema, evaluated = {}, [], [], {}, []
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
            new_ema[cid] = smoothed_weights(judgement.win_rates, previous, set(registered), deps.config,
                                            excluded=set(judgement.copies), zeroed=set(outcome.failed))
            outcome.ema = new_ema[cid]
            evaluated += [models[k].id for k in keys if k in models]
        state.complete_scoring(round_id, results, verdicts, new_ema, evaluated, registered=registered)
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


def finish_weights(deps: RoundDeps, round_id: int, metagraph: Metagraph, block: int) -> str:
    """Set a scored round's weights from the stored EMA; also used to resume a round after a restart.

    On a resume the metagraph is newer than the EMA: hotkeys that re-registered (or moved uid) in
    between are left out, as the next round would leave them out.
    """
    try:
        ema = deps.state.all_ema()
        recorded = deps.state.current_registrations()
        if recorded is not None:
            fresh = new_registrations({hk: r.uid for hk, r in recorded.items()},
                                      {n.hotkey: n.uid for n in metagraph.neurons})
            ema = {cid: {hk: w for hk, w in ws.items() if hk not in fresh} for cid, ws in ema.items()}
        uids, weights = uid_weights(ema, metagraph, deps.competitions)
        status = set_weights(deps, round_id, uids, weights, block)
    except ChainError as e:
        deps.state.finish_round(round_id, st.ROUND_DONE, f"weights: {e.code}: {e}")
        raise
    deps.state.finish_round(round_id, status)
    return status
