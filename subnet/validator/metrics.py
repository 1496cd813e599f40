"""Prometheus metrics of one validator, in a private registry (tests and several daemons never clash)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class ValidatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
