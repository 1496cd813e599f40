"""Prometheus metrics of one validator, in a private registry (tests and several daemons never clash).

Besides the round counters, the registry carries what an operator's dashboards expect of any
service: the build (version and git commit, to see which nodes run an old release), the standard
`process_*` metrics (memory, CPU, open files) and the time weights were last set.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)


class ValidatorMetrics:
    def __init__(self) -> None:
        from subnet import VERSION_KEY, __version__, git_commit

        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.build = Info("validator_build", "Version and git commit of the running validator", registry=r)
        self.build.info({"version": __version__, "commit": git_commit(), "version_key": str(VERSION_KEY)})
        self.rounds = Counter("validator_rounds", "Rounds by outcome", ["status"], registry=r)
        self.models_scored = Counter("validator_models_scored", "Models scored", ["competition"], registry=r)
        self.failures = Counter("validator_model_failures", "Model failures by reason", ["reason"], registry=r)
        self.tokens_per_s = Gauge("validator_tokens_per_second", "Last scoring throughput", ["competition"],
                                  registry=r)
        self.weight_attempts = Counter("validator_weight_attempts", "Weight-setting attempts by result",
                                       ["result"], registry=r)
        self.chain_errors = Counter("validator_chain_errors", "Chain calls that failed", registry=r)
        self.last_round_block = Gauge("validator_last_round_block", "Block of the last completed round",
                                      registry=r)
        self.round_seconds = Gauge("validator_round_seconds", "Duration of the last round", registry=r)
        self.last_weights_set = Gauge("validator_last_weights_set_timestamp_seconds",
                                      "Unix time of the last successful set_weights (0: none since start)",
                                      registry=r)
        self.health_failing = Gauge("validator_health_failing", "1 while /healthz fails for this reason",
                                    ["reason"], registry=r)
        self.health_failures = Counter("validator_health_failures", "Health checks failed, by reason", ["reason"],
                                       registry=r)
        self.state_lock_waits = Counter("validator_state_lock_waits", "Waits for another process's write lock on"
                                        " the state database", registry=r)
        self.rounds_resumed = Counter("validator_rounds_resumed", "Rounds finished after a stop or restart",
                                      registry=r)
        self.agreement = Gauge("validator_agreement", "vtrust of our last weights against the chain's consensus"
                               " (sum of min(w, consensus))", registry=r)
        self.catching_up = Gauge("validator_catching_up", "1 while fewer than 4 windows were scored in the last day",
                                 registry=r)
        self.models_parked = Gauge("validator_models_parked", "Models waiting after a failure of our own store,"
                                   " disk, cache, workers or checks", ["reason"], registry=r)
        self.weights_held = Gauge("validator_weights_held", "1 while a competition's weights are held because a"
                                  " leading model could not be judged for our fault", ["competition"], registry=r)
        self.disk_free = Gauge("validator_model_cache_free_bytes", "Free bytes on the model cache's disk at the"
                               " last round", registry=r)
        for reason in ("no_recent_round", "nothing_evaluated", "stale_ema", "models_parked", "weights_held",
                       "disk_below_floor"):
            self.health_failing.labels(reason=reason).set(0)

    def observe_health(self, reasons: list[str]) -> None:
        """Each failing reason is counted and flagged; reasons no longer failing go back to 0."""
        for sample in list(self.health_failing.collect()[0].samples):
            if sample.labels["reason"] not in reasons:
                self.health_failing.labels(reason=sample.labels["reason"]).set(0)
        for reason in reasons:
            self.health_failing.labels(reason=reason).set(1)
            self.health_failures.labels(reason=reason).inc()

    def observe_degraded(self, details: dict) -> None:
        """The numbers behind degraded operation (`degraded.py`); labels no longer present go back to 0."""
        for gauge, now in ((self.models_parked, details.get("models_parked") or {}),
                           (self.weights_held, {k: 1 for k in details.get("weights_held") or {}})):
            for sample in list(gauge.collect()[0].samples):
                label = next(iter(sample.labels.values()))
                if label not in now:
                    gauge.labels(label).set(0)
            for label, value in now.items():
                gauge.labels(label).set(value)
        if isinstance(details.get("disk_free_bytes"), int):
            self.disk_free.set(details["disk_free_bytes"])

    def render(self) -> bytes:
        return generate_latest(self.registry)
