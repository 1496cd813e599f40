"""Everything a validator run is configured by, in one place.

The CLI (`subnet validator run`) and environment variables fill a `ValidatorConfig`; the daemon
and the round only ever read this object, so a test can build one directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from subnet.chain.factory import DEVNET_PREFIX, network_problem


# After the model in progress ends: the round's partial results written, the API and workers ended.
STOP_SLACK_S = 30.0


@dataclass
class ValidatorConfig:
    # Chain and identity
    netuid: int = 1  # the CLI requires --netuid except on a devnet
    network: str = "finney"  # finney | test | local | ws(s)://URL | devnet:PATH
    wallet_name: str = "default"
    wallet_hotkey: str = "default"
    wallet_path: str = "~/.bittensor/wallets"
    # Where and what to evaluate
    device: str = "cpu"
    state_dir: Path = Path("~/.subnet/validator")
    competitions: tuple[str, ...] = ()  # empty: every competition with a reward share > 0
    competitions_file: Path | None = None
    schedule_file: Path | None = None  # competitions by block (subnet.schedule); replaces competitions_file
    store: str = "hf"  # hf | local:DIR
    hf_endpoint: str | None = None
    data_endpoint: str | None = None
    # Status API
    api_host: str = "127.0.0.1"
    api_port: int = 8091  # 0: no API
    # Round cadence and budgets
    set_weights: bool = True
    round_interval_s: float = 600.0
    max_rounds: int | None = None  # stop after this many rounds (tests, devnet)
    timeout_per_model_s: float = 600.0
    fetch_timeout_per_model_s: float = 1800.0  # one model's whole listing, download, hash and checks
    max_models_per_round: int = 16  # per competition
    min_revisits_per_round: int = 1  # slots kept for re-evaluating older models
    seed_window_blocks: int = 150  # data seed = hash of the block at floor(block / window) * window
    eligibility_margin_blocks: int = 10
    weights_interval_blocks: int = 100  # set weights at most this often (and never faster than the chain allows)
    weights_retries: int = 3
    # Past windows a round may score when the current one has nothing left to score (catch-up, backfill).
    backfill_windows: int = 8
    confidence: float = 0.95
    min_free_disk_bytes: int = 5 * 1024**3
    scoring_mode: str = "worker"  # worker: one process per model (isolation) | inprocess: devnet and tests
    max_chain_backoff_s: float = 300.0
    healthz_max_age_s: float = 0.0  # /healthz answers 503 when the last round is older; 0: 3 x round interval
    healthz_idle_rounds: int = 2  # /healthz fails after this many rounds in a row that evaluated nothing due
    # Resumable rounds, the state's lock waits and retention
    resume_max_age_blocks: int = 7200  # an interrupted round older than this (1 day) is discarded, not resumed
    state_lock_wait_s: float = 120.0  # how long a write waits for another process's lock before the round pauses
    keep_loss_rounds: int = 48  # per-document losses of the newest N completed rounds are kept
    keep_summary_rounds: int = 1440  # results, verdicts and rounds of the newest N (10 days at 10 min)
    worker_memory_gb: float = 0.0  # CPU scoring workers' address-space cap; 0: enough for the competition
    wandb_project: str | None = None

    @property
    def stop_time_bound_s(self) -> float:
        """The longest a stop request waits: the model in progress (its timeout), then the round's
        bookkeeping. The README's systemd TimeoutStopSec and Docker stop timeout are set above it."""
        return self.timeout_per_model_s + STOP_SLACK_S

    @property
    def healthz_age_limit_s(self) -> float:
        """/healthz fails when no round completed for this long."""
        return self.healthz_max_age_s or max(3 * self.round_interval_s, 1800.0)

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir).expanduser()

    @property
    def db_path(self) -> Path:
        return self.state_path / "state.sqlite"

    @property
    def models_dir(self) -> Path:
        return self.state_path / "models"

    def validate(self) -> None:
        """Fail at start-up, naming the bad setting, rather than hours later in a round."""
        if not (self.store == "hf" or self.store.startswith("local:")):
            raise ValueError(f"--store must be 'hf' or 'local:DIR', got {self.store!r}")
        if self.round_interval_s < 0:
            raise ValueError(f"--round-interval-s must be >= 0, got {self.round_interval_s}")
        if self.timeout_per_model_s <= 0:
            raise ValueError(f"--timeout-per-model must be positive, got {self.timeout_per_model_s}")
        if self.fetch_timeout_per_model_s <= 0:
            raise ValueError(f"fetch_timeout_per_model_s must be positive, got {self.fetch_timeout_per_model_s}")
        if self.max_models_per_round <= 0:
            raise ValueError(f"max_models_per_round must be positive, got {self.max_models_per_round}")
        if self.backfill_windows < 0:
            raise ValueError(f"backfill_windows must not be negative, got {self.backfill_windows}")
        if self.scoring_mode not in ("worker", "inprocess"):
            raise ValueError(f"scoring_mode must be 'worker' or 'inprocess', got {self.scoring_mode!r}")
        if not (0 <= self.api_port < 65536):
            raise ValueError(f"--api-port must be in [0, 65535], got {self.api_port}")
        if self.keep_loss_rounds < 0 or self.keep_summary_rounds < 0:
            raise ValueError("--keep-loss-rounds and --keep-summary-rounds must be >= 0 (0 keeps everything)")
        if self.state_lock_wait_s <= 0:
            raise ValueError(f"--state-lock-wait-s must be positive, got {self.state_lock_wait_s}")
        if self.max_rounds is not None and self.max_rounds < 0:
            raise ValueError(f"--max-rounds must be >= 0, got {self.max_rounds}")
        problem = network_problem(self.network)
        if problem:
            raise ValueError(f"--network: {problem}")
        if self.netuid < 0:
            # A default netuid silently validated someone else's subnet; only a devnet has an obvious one.
            raise ValueError(f"--netuid is required on network {self.network!r} (the subnet to validate)")

    @property
    def is_devnet(self) -> bool:
        return self.network.startswith(DEVNET_PREFIX)
