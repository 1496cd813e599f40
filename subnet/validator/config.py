"""Everything a validator run is configured by, in one place.

The CLI (`subnet validator run`) and environment variables fill a `ValidatorConfig`; the daemon
and the round only ever read this object, so a test can build one directly. A field a person may
set from the command line carries its flags, environment variables and help here (`setting`):
`subnet.commands.validator_options` builds the command's options from these fields, so an option
is written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional

from subnet.chain.factory import DEVNET_PREFIX, network_problem


# After the model in progress ends: the round's partial results written, the API and workers ended.
STOP_SLACK_S = 30.0
_SAME = object()  # a CLI default or type that is the field's own


@dataclass(frozen=True)
class Flag:
    """How a config field appears on the command line: its flags (bittensor's spellings too), the
    environment variables it reads, its help; and where the CLI value differs from the field's
    (GB for bytes, `--dont-set-weights` for `set_weights`), the CLI's type, default and conversion."""

    flags: tuple[str, ...]
    help: str
    env: tuple[str, ...] = ()
    cli_type: Any = _SAME
    cli_default: Any = _SAME
    to_config: Optional[Callable[[Any], Any]] = None


def setting(default: Any, *flags: str, help: str, env: str | tuple[str, ...] = (), **cli: Any) -> Any:
    """A config field with a command-line option (see `Flag`)."""
    env = (env,) if isinstance(env, str) else tuple(env)
    return field(default=default, metadata={"cli": Flag(tuple(flags), help, env, **cli)})


def _gb_to_bytes(gb: float) -> int:
    return int(gb * 1024**3)


@dataclass
class ValidatorConfig:
    # Chain and identity
    netuid: int = setting(1, "--netuid", env="SUBNET_NETUID", cli_type=Optional[int], cli_default=None,
                          help="Subnet id. Required except on a devnet (devnet:PATH).")
    network: str = setting("finney", "--network", "--subtensor.network", env=("SUBNET_NETWORK", "BT_NETWORK"),
                           help="finney | test | local | ws(s)://URL | devnet:PATH")
    wallet_name: str = setting("default", "--wallet.name", "--wallet-name", env=("SUBNET_WALLET_NAME", "BT_WALLET"),
                               help="Wallet (coldkey) name.")
    wallet_hotkey: str = setting("default", "--wallet.hotkey", "--wallet-hotkey",
                                 env=("SUBNET_WALLET_HOTKEY", "BT_WALLET_HOTKEY"),
                                 help="Hotkey name in the wallet; it signs the weights.")
    wallet_path: str = setting("~/.bittensor/wallets", "--wallet.path", "--wallet-path",
                               env=("SUBNET_WALLET_PATH", "BT_WALLET_PATH"), help="Wallets directory.")
    # Where and what to evaluate
    device: str = setting("cpu", "--device", env="SUBNET_DEVICE", cli_default="auto",
                          help="auto (the current GPU when torch sees one, else cpu) | cpu | cuda | cuda:N | "
                               "cuda:all | cuda:0,cuda:1 (one scoring worker per GPU)")
    state_dir: Path = setting(Path("~/.subnet/validator"), "--state-dir", env="SUBNET_STATE_DIR",
                              help="SQLite state and downloaded models.")
    competitions: tuple[str, ...] = setting(  # empty: every competition with a reward share > 0
        (), "--competition", env="SUBNET_COMPETITION", cli_type=Optional[List[str]], cli_default=None,
        to_config=lambda ids: tuple(ids or ()),
        help="Competition to evaluate (repeatable). Default: the network's competitions with a reward "
             "share (b3 on finney); the toy tiny exists only on a devnet.")
    competitions_file: Optional[Path] = setting(
        None, "--competitions-file", env="SUBNET_COMPETITIONS_FILE",
        help="TOML/JSON file replacing the built-in competitions (format: docs/competitions-file.md).")
    schedule_file: Optional[Path] = setting(  # competitions by block (subnet.schedule); replaces competitions_file
        None, "--schedule-file", env="SUBNET_SCHEDULE_FILE",
        help="TOML/JSON schedule of competitions by block (replaces --competitions-file).")
    store: str = setting("hf", "--store", env="SUBNET_STORE", help="hf | local:DIR")
    hf_endpoint: Optional[str] = setting(None, "--hf-endpoint", env="HF_ENDPOINT",
                                         help="Hugging Face endpoint (default: the public Hub).")
    data_endpoint: Optional[str] = setting(None, "--data-endpoint", env="SUBNET_DATA_ENDPOINT",
                                           help="Datasets-server endpoint for evaluation pages.")
    # Status API
    api_host: str = setting("127.0.0.1", "--api-host", env="SUBNET_API_HOST",
                            help="Status API address (keep 127.0.0.1 behind a proxy).")
    api_port: int = setting(8091, "--api-port", "--axon.port", env="SUBNET_API_PORT",
                            help="Status API port; 0 turns the API off.")
    # Round cadence and budgets
    set_weights: bool = setting(True, "--dont-set-weights", env="SUBNET_DONT_SET_WEIGHTS", cli_type=bool,
                                cli_default=False, to_config=lambda dont: not dont,
                                help="Score and log, but never call set_weights.")
    round_interval_s: float = setting(600.0, "--round-interval-s", env="SUBNET_ROUND_INTERVAL_S",
                                      help="Seconds from the start of one round to the next.")
    max_rounds: Optional[int] = setting(None, "--max-rounds", env="SUBNET_MAX_ROUNDS",  # tests, devnet
                                        help="Stop after this many rounds (default: run until stopped).")
    timeout_per_model_s: float = setting(600.0, "--timeout-per-model", env="SUBNET_TIMEOUT_PER_MODEL",
                                         help="Seconds one model may take to score.")
    fetch_timeout_per_model_s: float = 1800.0  # one model's whole listing, download, hash and checks
    max_models_per_round: int = setting(16, "--max-models-per-round", env="SUBNET_MAX_MODELS_PER_ROUND",
                                        help="Models scored per competition per round.")
    min_revisits_per_round: int = 1  # slots kept for re-evaluating older models
    seed_window_blocks: int = setting(  # data seed = hash of the block at floor(block / window) * window
        150, "--seed-window-blocks", env="SUBNET_SEED_WINDOW_BLOCKS",
        help="Blocks per data seed (all validators must agree).")
    eligibility_margin_blocks: int = setting(10, "--eligibility-margin-blocks",
                                             env="SUBNET_ELIGIBILITY_MARGIN_BLOCKS",
                                             help="A commitment must predate the seed block by this much.")
    weights_interval_blocks: int = setting(  # and never faster than the chain allows
        100, "--weights-interval-blocks", env="SUBNET_WEIGHTS_INTERVAL_BLOCKS",
        help="Set weights at most this often (blocks).")
    weights_retries: int = 3
    # Past windows a round may score when the current one has nothing left to score (catch-up, backfill).
    backfill_windows: int = 8
    confidence: float = 0.95
    min_free_disk_bytes: int = setting(5 * 1024**3, "--min-free-disk-gb", env="SUBNET_MIN_FREE_DISK_GB",
                                       cli_type=float, cli_default=5.0, to_config=_gb_to_bytes,
                                       help="Skip downloads below this much free disk.")
    scoring_mode: str = setting("worker", "--scoring-mode", env="SUBNET_SCORING_MODE",  # inprocess: devnet, tests
                                help="worker (a process per model) | inprocess")
    max_chain_backoff_s: float = 300.0
    healthz_max_age_s: float = 0.0  # /healthz answers 503 when the last round is older; 0: 3 x round interval
    healthz_idle_rounds: int = 2  # /healthz fails after this many rounds in a row that evaluated nothing due
    # Resumable rounds, the state's lock waits and retention
    resume_max_age_blocks: int = 7200  # an interrupted round older than this (1 day) is discarded, not resumed
    state_lock_wait_s: float = setting(120.0, "--state-lock-wait-s", env="SUBNET_STATE_LOCK_WAIT_S",
                                       help="Longest wait for another process's lock on the state.")
    keep_loss_rounds: int = setting(48, "--keep-loss-rounds", env="SUBNET_KEEP_LOSS_ROUNDS",
                                    help="Per-document losses kept for the newest N rounds (0: all).")
    keep_summary_rounds: int = setting(1440, "--keep-summary-rounds", env="SUBNET_KEEP_SUMMARY_ROUNDS",
                                       help="Results, verdicts and rounds kept for the newest N (0: all).")
    worker_memory_gb: float = setting(0.0, "--worker-memory-gb", env="SUBNET_WORKER_MEMORY_GB",
                                      help="CPU scoring workers' memory cap (0: sized to the competition).")
    wandb_project: Optional[str] = setting(None, "--wandb-project", "--wandb.project", env="WANDB_PROJECT",
                                           help="Log rounds to this Weights & Biases project.")

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
            raise ValueError(f"--max-models-per-round must be positive, got {self.max_models_per_round}")
        if self.backfill_windows < 0:
            raise ValueError(f"backfill_windows must not be negative, got {self.backfill_windows}")
        if self.scoring_mode not in ("worker", "inprocess"):
            raise ValueError(f"--scoring-mode must be 'worker' or 'inprocess', got {self.scoring_mode!r}")
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
