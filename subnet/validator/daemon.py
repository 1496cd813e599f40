"""The validator daemon: rounds forever, unattended, for weeks.

Nothing a round does may stop the loop: every exception is caught, logged and recorded, and
the next round runs. Chain outages back off exponentially. SIGTERM/SIGINT ask for a clean stop:
the model being scored finishes (at most the per-model timeout, `config.stop_time_bound_s` in
all), the round is left `interrupted` with every finished model's losses kept, and the next start
resumes it with the same seed and documents. The status API and any worker processes end; workers
also end on their own if the daemon is killed. A second signal stops at once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from subnet.chain.base import ChainError
from subnet.competitions import (
    DEFAULT_COMPETITIONS,
    Competition,
    CompetitionError,
    competitions_on,
    default_competitions,
    load_competitions,
)
from subnet.schedule import CompetitionSchedule, default_schedule, load_schedule
from subnet.validator import state as st
from subnet.validator.config import ValidatorConfig
from subnet.validator.degraded import record_standing
from subnet.validator.daemon_signals import FORCED_STOP, install_signal_handlers
from subnet.validator.metrics import ValidatorMetrics
from subnet.validator.round import (
    RoundAborted,
    RoundDeps,
    RoundSummary,
    finish_weights,
    run_round,
)
from subnet.validator.state import StateBusy, ValidatorState

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- wiring


def resolve_competitions(config: ValidatorConfig) -> tuple[dict[str, Competition], dict[str, Competition]]:
    """(evaluated, known): the competitions to score, and all those a commitment may name.

    With a schedule, both span every entry: the entry in force at a round's window narrows them
    (`subnet.validator.in_force`). Off the devnet a devnet-only competition (the toy `tiny`) does not
    exist: it is neither scored by default nor accepted in a commitment, and asking for it is an error."""
    table = resolve_schedule(config).all_competitions()
    known = competitions_on(config.network, table)
    if config.competitions:
        toys = [c for c in config.competitions if c in table and c not in known]
        if toys:
            raise CompetitionError(f"--competition {toys} exists only on a devnet (devnet:PATH), "
                                   f"not on {config.network!r}")
        unknown = [c for c in config.competitions if c not in known]
        if unknown:
            raise CompetitionError(f"--competition {unknown} unknown; known: {sorted(known)}")
        return {c: known[c] for c in config.competitions}, known
    if config.schedule_file is None:
        return default_competitions(config.network, table), known
    return {c: v for c, v in known.items() if v.reward_share > 0}, known


def resolve_schedule(config: ValidatorConfig) -> CompetitionSchedule:
    """--schedule-file, else one entry from block 0 with --competitions-file or the defaults; a
    malformed file fails here, at start-up, naming the entry and the field."""
    if config.schedule_file:
        return load_schedule(config.schedule_file)
    known = load_competitions(config.competitions_file) if config.competitions_file else dict(DEFAULT_COMPETITIONS)
    return default_schedule(known)


def make_store(config: ValidatorConfig):
    from subnet.hub.factory import make_store as store_from_spec

    return store_from_spec(config.store, config.hf_endpoint)


def make_wallet(config: ValidatorConfig):
    import bittensor as bt

    return bt.Wallet(name=config.wallet_name, hotkey=config.wallet_hotkey, path=config.wallet_path)


def source_factory(config: ValidatorConfig) -> Callable[[Competition], object]:
    """One document source per competition, built on first use and kept (connection pools, caches)."""
    cache: dict[str, object] = {}

    def source_for(competition: Competition):
        if competition.id not in cache:
            cache[competition.id] = _make_source(competition, config)
        return cache[competition.id]

    return source_for


def _make_source(competition: Competition, config: ValidatorConfig):
    from subnet.data.sources import make_source

    extra = {"endpoint": config.data_endpoint} if config.data_endpoint else {}
    if config.hf_endpoint:  # FineWeb's parquet files live on the same Hub as the models
        extra["hub_endpoint"] = config.hf_endpoint
    return make_source(competition, **extra)


def build_deps(config: ValidatorConfig, state: ValidatorState, metrics: ValidatorMetrics,
               stop: threading.Event, wallet=None) -> RoundDeps:
    from subnet.chain.factory import make_chain
    from subnet.validator.round import inprocess_scorer, worker_scorer

    evaluated, known = resolve_competitions(config)
    chain = make_chain(config.network, config.netuid, wallet=wallet or make_wallet(config))
    memory_cap = int(config.worker_memory_gb * 1024**3) or None  # None: sized to the competition
    scorer = (inprocess_scorer(config.device) if config.scoring_mode == "inprocess"
              else worker_scorer(config.device, config.timeout_per_model_s, memory_cap))
    return RoundDeps(chain=chain, store=make_store(config), state=state, config=config, competitions=evaluated,
                     known_competitions=known, source_for=source_factory(config), scorer=scorer, metrics=metrics,
                     stop=stop, schedule=resolve_schedule(config))


# ----------------------------------------------------------------------------- the loop


@dataclass
class LoopStats:
    rounds: int = 0
    completed: int = 0
    failed: int = 0
    consecutive_chain_failures: int = 0


class Daemon:
    def __init__(self, deps: RoundDeps, *, on_round: Callable[[RoundSummary], None] | None = None) -> None:
        self.deps = deps
        self.stats = LoopStats()
        self.started_at = time.time()
        self.on_round = on_round or log_summary

    @property
    def stop(self) -> threading.Event:
        return self.deps.stop

    def request_stop(self) -> None:
        self.deps.stop.set()

    def run(self) -> int:
        """Round after round until stopped or `max_rounds` is reached. Returns an exit code."""
        self._watch_state_locks()
        self.recover()
        cfg = self.deps.config
        while not self.stop.is_set():
            if cfg.max_rounds is not None and self.stats.rounds >= cfg.max_rounds:
                break
            started = time.monotonic()
            self.stats.rounds += 1
            delay = self.run_one()
            if cfg.max_rounds is not None and self.stats.rounds >= cfg.max_rounds:
                break
            self.stop.wait(max(0.0, delay - (time.monotonic() - started)))
        log.info("validator stopped after %d round(s): %d completed, %d failed",
                 self.stats.rounds, self.stats.completed, self.stats.failed)
        # A supervisor must see a validator that never completes a round as failing, not as done.
        return 1 if self.stats.failed and not self.stats.completed else 0

    def run_one(self) -> float:
        """One round with every failure caught; returns how long to wait before the next one."""
        deps, cfg = self.deps, self.deps.config
        try:
            summary = run_round(deps)
        except RoundAborted as e:
            log.info("round interrupted (%s): its finished models are kept and the next start resumes it", e)
            deps.metrics.rounds.labels(status="interrupted").inc()
            return 0.0
        except StateBusy as e:  # another process holds the state: the round resumes once it is free
            self.stats.failed += 1
            deps.metrics.rounds.labels(status="state_locked").inc()
            log.warning("round paused: %s; finished scoring is kept and the round resumes next time", e)
            return min(cfg.round_interval_s, 30.0)
        except ChainError as e:
            self.stats.failed += 1
            self.stats.consecutive_chain_failures += 1
            deps.metrics.chain_errors.inc()
            deps.metrics.rounds.labels(status="chain_error").inc()
            backoff = min(cfg.max_chain_backoff_s, 2.0 ** self.stats.consecutive_chain_failures)
            if e.code == "rate_limited" and e.retry_after_s:  # the endpoint said how long: hammering it is worse
                backoff = max(backoff, e.retry_after_s)
            self._record_error("chain", e)
            log.warning("round failed on the chain (%s: %s); retrying in %.0f s", e.code, e, backoff)
            return backoff
        except Exception as e:  # noqa: BLE001 - the daemon must outlive any single round
            self.stats.failed += 1
            self.stats.consecutive_chain_failures = 0
            deps.metrics.rounds.labels(status="failed").inc()
            self._record_error("round", e)
            log.exception("round failed: %s", e)
            return cfg.round_interval_s
        self.stats.completed += 1
        self.stats.consecutive_chain_failures = 0
        record_standing(deps.state, summary.round_id,
                        {cid: o.weights_held for cid, o in summary.competitions.items() if o.weights_held},
                        cfg.models_dir, cfg.min_free_disk_bytes)
        if summary.resumed:
            deps.metrics.rounds_resumed.inc()
        deps.metrics.rounds.labels(status=summary.weights_status).inc()
        deps.metrics.last_round_block.set(summary.block)
        deps.metrics.round_seconds.set(summary.seconds)
        self._check_health()
        try:
            self.on_round(summary)
        except Exception:  # noqa: BLE001 - reporting must never stop validating
            log.exception("round report failed")
        return cfg.round_interval_s

    def recover(self) -> None:
        """Make an interrupted state consistent, and set weights of a round scored before a stop."""
        from subnet.eval.worker import remove_stale_temp_dirs

        from subnet.hub.cache import remove_dead_partials

        removed = remove_stale_temp_dirs()
        if removed:
            log.info("removed %d scoring temp dir(s) left by a killed run", len(removed))
        try:
            partials = remove_dead_partials(self.deps.config.models_dir)
        except OSError as e:  # our disk: the next round's clean-up tries again
            partials = []
            log.warning("could not look for partial downloads: %s", e)
        if partials:
            log.info("removed %d partial download(s) left by a killed run", len(partials))
        rec = self.deps.state.recover()
        if rec.interrupted:
            log.info("restart: round(s) %s stopped while scoring; the next round resumes the newest", rec.interrupted)
        if rec.discarded or rec.unknown_weights:
            log.info("restart: discarded unfinished round(s) %s; weights of round(s) %s may have been sent and "
                     "will not be sent again", rec.discarded, rec.unknown_weights)
        for round_id in rec.resumable:
            try:
                metagraph = self.deps.chain.metagraph()
                finish_weights(self.deps, round_id, metagraph, int(metagraph.block))
            except Exception as e:  # noqa: BLE001 - the next round sets weights anyway
                self.deps.state.finish_round(round_id, st.ROUND_DONE, f"resume failed: {e}"[:2000])
                log.warning("could not resume round %d: %s", round_id, e)

    def _check_health(self) -> None:
        """After each round, /healthz's verdict into /metrics (also when nobody polls /healthz)."""
        from subnet.validator.api import check_health
        from subnet.validator.health import HealthPolicy

        cfg = self.deps.config
        health = check_health(self.deps.state, self.deps.metrics,
                              HealthPolicy(cfg.healthz_age_limit_s, cfg.healthz_idle_rounds), self.started_at)
        if not health.ok:
            log.warning("unhealthy: %s (%s)", ", ".join(health.reasons), health.details)

    def _watch_state_locks(self) -> None:
        state, metrics = self.deps.state, self.deps.metrics
        state.lock_wait_s = self.deps.config.state_lock_wait_s
        state.on_lock_wait = lambda waited: metrics.state_lock_waits.inc()

    def _record_error(self, kind: str, error: BaseException) -> None:
        try:
            count = int(self.deps.state.get_meta("error_count", 0) or 0) + 1
            self.deps.state.set_meta("error_count", count)
            self.deps.state.set_meta("last_error", {"kind": kind, "type": type(error).__name__,
                                                    "message": str(error)[:2000], "at": time.time()})
        except Exception:  # noqa: BLE001 - the database itself may be the problem
            log.exception("could not record the error")


def log_summary(summary: RoundSummary) -> None:
    """Log lines for a round (uids and refs unknown here; `run_validator` uses `round_reporter`)."""
    from subnet.validator.report import round_lines

    for line, level, fields in round_lines(summary, {}, {}):
        log.log(level, line, extra=fields)


# ----------------------------------------------------------------------------- entry point


def _last_round_block(state: ValidatorState) -> int | None:
    rounds = state.rounds(limit=1)
    return rounds[0].block if rounds else None


def run_validator(config: ValidatorConfig, *, deps: RoundDeps | None = None) -> int:
    """Open the state, start the status API, run the daemon until stopped; everything closed on the way out."""
    config.validate()
    wallet = hotkey = None
    if deps is None:  # a real run: check what can be checked before opening anything
        from subnet.validator.startup import check_local

        wallet = make_wallet(config)
        hotkey = check_local(config, wallet)
    state = deps.state if deps else ValidatorState(config.db_path)
    metrics = deps.metrics if deps else ValidatorMetrics()
    stop = deps.stop if deps else threading.Event()
    restore = install_signal_handlers(stop, config.stop_time_bound_s)
    server = None
    try:
        neuron = None
        if deps is None:
            from subnet.validator.startup import check_chain

            deps = build_deps(config, state, metrics, stop, wallet)
            neuron = check_chain(deps.chain, config, hotkey)
            from subnet.validator.operator_status import identity_of, record_identity

            record_identity(state, identity_of(config, hotkey, neuron.uid))
        server, api_url = start_status_api(config, state, metrics, deps) if config.api_port else (None, None)
        if neuron is not None:
            from subnet.validator.startup import log_banner

            log_banner(config, hotkey, neuron, deps.competitions, api_url)
        from subnet.validator.reporters import round_reporters

        reporters = round_reporters(config, state)
        daemon = Daemon(deps, on_round=lambda s: [r(s) for r in reporters])
        return daemon.run()
    except KeyboardInterrupt:
        log.info("stopped")
        return FORCED_STOP
    except (ChainError, CompetitionError) as e:  # start-up problems: say what, without a traceback
        log.error("validator cannot start: %s", e)
        return 1
    finally:
        restore()
        _close_all(server, deps, state)


def start_status_api(config: ValidatorConfig, state: ValidatorState, metrics: ValidatorMetrics, deps: RoundDeps):
    """The status API, started: (server, its URL). A port that cannot be bound is a start-up error."""
    from subnet.validator.api import StatusServer, build_app

    # The API thread never calls the chain (SDK connections are not shared across threads): ages are
    # measured at the latest round's block. It reads through its own read-only connections, so neither
    # the daemon's writes nor another process's lock hold it up.
    reader = state.reader()
    app = build_app(reader, metrics, competitions=deps.known_competitions,
                    current_block=lambda: _last_round_block(reader), healthz_max_age_s=config.healthz_age_limit_s,
                    healthz_idle_rounds=config.healthz_idle_rounds)
    server = StatusServer(app, config.api_host, config.api_port)
    try:
        port = server.start()
    except RuntimeError as e:
        from subnet.preflight import PreflightError

        raise PreflightError(str(e)) from None
    api_url = f"http://{config.api_host}:{port}"
    log.info("status API on %s (/healthz /scores /rounds /metrics)", api_url)
    return server, api_url


def _close_all(server, deps: RoundDeps | None, state: ValidatorState) -> None:
    """Everything run_validator opened or started, closed: a second signal may have left the round
    mid-scoring, so workers are ended here too, and nothing outlives the daemon."""
    from subnet.eval.children import stop_children

    stop_children()
    if server is not None:
        server.stop()
    if deps is not None:
        try:
            deps.chain.close()
        except Exception:  # noqa: BLE001
            pass
    state.close()
