"""`subnet validator run` (and `python neurons/validator.py`): flags in the bittensor style.

Every flag also reads an environment variable (SUBNET_NETUID, SUBNET_NETWORK, ...; btcli's BT_NETWORK,
BT_WALLET, BT_WALLET_HOTKEY, BT_WALLET_PATH as fallbacks), so a container can be configured without a
command line. The spellings of bittensor's own neurons (--subtensor.network, --subtensor.chain_endpoint,
--wallet.name, --logging.debug, --wandb.off ...) are accepted, so existing launch scripts carry over.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from subnet.commands.boundary import CONTEXT_SETTINGS, run_command
from subnet.logs import LOG_FORMATS, LOG_LEVELS
from subnet.validator.config import ValidatorConfig

app = typer.Typer(help="Run a validator.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, context_settings=CONTEXT_SETTINGS)


def _choice(values: tuple[str, ...]):
    """Case-insensitive choice: a bad value is a one-line usage error naming the choices."""
    def check(value: str) -> str:
        if value is not None and value.upper() not in {v.upper() for v in values}:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(values)}")
        return value

    return check


@app.callback()
def _group() -> None:
    """Validator commands."""


@app.command("run")
def run(
    netuid: Optional[int] = typer.Option(None, "--netuid", envvar="SUBNET_NETUID",
                                         help="Subnet id. Required except on a devnet (devnet:PATH)."),
    network: str = typer.Option("finney", "--network", "--subtensor.network", envvar=["SUBNET_NETWORK", "BT_NETWORK"],
                                help="finney | test | local | ws(s)://URL | devnet:PATH"),
    chain_endpoint: Optional[str] = typer.Option(
        None, "--subtensor.chain_endpoint", "--chain-endpoint", envvar="SUBNET_CHAIN_ENDPOINT",
        help="A ws(s):// endpoint; overrides --network (bittensor's spelling)."),
    wallet_name: str = typer.Option("default", "--wallet.name", "--wallet-name",
                                    envvar=["SUBNET_WALLET_NAME", "BT_WALLET"], help="Wallet (coldkey) name."),
    wallet_hotkey: str = typer.Option("default", "--wallet.hotkey", "--wallet-hotkey",
                                      envvar=["SUBNET_WALLET_HOTKEY", "BT_WALLET_HOTKEY"],
                                      help="Hotkey name in the wallet; it signs the weights."),
    wallet_path: str = typer.Option("~/.bittensor/wallets", "--wallet.path", "--wallet-path",
                                    envvar=["SUBNET_WALLET_PATH", "BT_WALLET_PATH"], help="Wallets directory."),
    device: str = typer.Option("auto", "--device", envvar="SUBNET_DEVICE",
                               help="auto (the current GPU when torch sees one, else cpu) | cpu | cuda | cuda:N | "
                                    "cuda:all | cuda:0,cuda:1 (one scoring worker per GPU)"),
    state_dir: Path = typer.Option(Path("~/.subnet/validator"), "--state-dir", envvar="SUBNET_STATE_DIR",
                                   help="SQLite state and downloaded models."),
    competition: Optional[List[str]] = typer.Option(
        None, "--competition", envvar="SUBNET_COMPETITION",
        help="Competition to evaluate (repeatable). Default: the network's competitions with a reward "
             "share (b3 on finney); the toy tiny exists only on a devnet."),
    competitions_file: Optional[Path] = typer.Option(None, "--competitions-file", envvar="SUBNET_COMPETITIONS_FILE",
                                                     help="TOML/JSON file replacing the built-in competitions."),
    schedule_file: Optional[Path] = typer.Option(None, "--schedule-file", envvar="SUBNET_SCHEDULE_FILE",
                                                 help="TOML/JSON schedule of competitions by block (replaces "
                                                      "--competitions-file)."),
    api_host: str = typer.Option("127.0.0.1", "--api-host", envvar="SUBNET_API_HOST",
                                 help="Status API address (keep 127.0.0.1 behind a proxy)."),
    api_port: int = typer.Option(8091, "--api-port", "--axon.port", envvar="SUBNET_API_PORT",
                                 help="Status API port; 0 turns the API off."),
    dont_set_weights: bool = typer.Option(False, "--dont-set-weights", envvar="SUBNET_DONT_SET_WEIGHTS",
                                          help="Score and log, but never call set_weights."),
    store: str = typer.Option("hf", "--store", envvar="SUBNET_STORE", help="hf | local:DIR"),
    hf_endpoint: Optional[str] = typer.Option(None, "--hf-endpoint", envvar="HF_ENDPOINT",
                                              help="Hugging Face endpoint (default: the public Hub)."),
    data_endpoint: Optional[str] = typer.Option(None, "--data-endpoint", envvar="SUBNET_DATA_ENDPOINT",
                                                help="Datasets-server endpoint for evaluation pages."),
    round_interval_s: float = typer.Option(600.0, "--round-interval-s", envvar="SUBNET_ROUND_INTERVAL_S",
                                           help="Seconds from the start of one round to the next."),
    max_rounds: Optional[int] = typer.Option(None, "--max-rounds", envvar="SUBNET_MAX_ROUNDS",
                                             help="Stop after this many rounds (default: run until stopped)."),
    timeout_per_model: float = typer.Option(600.0, "--timeout-per-model", envvar="SUBNET_TIMEOUT_PER_MODEL",
                                            help="Seconds one model may take to score."),
    max_models: int = typer.Option(16, "--max-models-per-round", envvar="SUBNET_MAX_MODELS_PER_ROUND",
                                   help="Models scored per competition per round."),
    weights_interval_blocks: int = typer.Option(100, "--weights-interval-blocks",
                                                envvar="SUBNET_WEIGHTS_INTERVAL_BLOCKS",
                                                help="Set weights at most this often (blocks)."),
    seed_window_blocks: int = typer.Option(150, "--seed-window-blocks", envvar="SUBNET_SEED_WINDOW_BLOCKS",
                                           help="Blocks per data seed (all validators must agree)."),
    eligibility_margin_blocks: int = typer.Option(10, "--eligibility-margin-blocks",
                                                  envvar="SUBNET_ELIGIBILITY_MARGIN_BLOCKS",
                                                  help="A commitment must predate the seed block by this much."),
    scoring_mode: str = typer.Option("worker", "--scoring-mode", envvar="SUBNET_SCORING_MODE",
                                     help="worker (a process per model) | inprocess"),
    min_free_disk_gb: float = typer.Option(5.0, "--min-free-disk-gb", envvar="SUBNET_MIN_FREE_DISK_GB",
                                           help="Skip downloads below this much free disk."),
    keep_loss_rounds: int = typer.Option(48, "--keep-loss-rounds", envvar="SUBNET_KEEP_LOSS_ROUNDS",
                                         help="Per-document losses kept for the newest N rounds (0: all)."),
    keep_summary_rounds: int = typer.Option(1440, "--keep-summary-rounds", envvar="SUBNET_KEEP_SUMMARY_ROUNDS",
                                            help="Results, verdicts and rounds kept for the newest N (0: all)."),
    state_lock_wait_s: float = typer.Option(120.0, "--state-lock-wait-s", envvar="SUBNET_STATE_LOCK_WAIT_S",
                                            help="Longest wait for another process's lock on the state."),
    worker_memory_gb: float = typer.Option(0.0, "--worker-memory-gb", envvar="SUBNET_WORKER_MEMORY_GB",
                                           help="CPU scoring workers' memory cap (0: sized to the competition)."),
    wandb_project: Optional[str] = typer.Option(None, "--wandb-project", "--wandb.project", envvar="WANDB_PROJECT",
                                                help="Log rounds to this Weights & Biases project."),
    wandb_off: bool = typer.Option(False, "--wandb.off", "--wandb-off", envvar="SUBNET_WANDB_OFF",
                                   help="Never log to Weights & Biases, even with WANDB_PROJECT set."),
    log_level: str = typer.Option("INFO", "--log-level", envvar="SUBNET_LOG_LEVEL", callback=_choice(LOG_LEVELS),
                                  help=f"{' | '.join(LOG_LEVELS)}"),
    log_format: str = typer.Option("auto", "--log-format", envvar="SUBNET_LOG_FORMAT", callback=_choice(LOG_FORMATS),
                                   help="auto (rich on a terminal, plain dated lines otherwise) | rich | plain | "
                                        "json (one object per line)"),
    logging_debug: bool = typer.Option(False, "--logging.debug", help="Same as --log-level DEBUG."),
    logging_trace: bool = typer.Option(False, "--logging.trace", help="Same as --log-level TRACE."),
) -> None:
    """Evaluate miners' models round after round and set weights."""
    from subnet.logs import setup_logging
    from subnet.validator.daemon import run_validator
    from subnet.validator.daemon_signals import exit_at_once_if_forced

    if chain_endpoint:
        network = chain_endpoint
    if netuid is None and network.startswith("devnet:"):
        netuid = 1  # the devnet's own subnet
    config = ValidatorConfig(
        netuid=-1 if netuid is None else netuid, network=network, wallet_name=wallet_name,
        wallet_hotkey=wallet_hotkey, wallet_path=wallet_path, device=device, state_dir=state_dir,
        competitions=tuple(competition or ()), competitions_file=competitions_file, schedule_file=schedule_file,
        store=store,
        hf_endpoint=hf_endpoint, data_endpoint=data_endpoint, api_host=api_host, api_port=api_port,
        set_weights=not dont_set_weights, round_interval_s=round_interval_s, max_rounds=max_rounds,
        timeout_per_model_s=timeout_per_model, max_models_per_round=max_models,
        weights_interval_blocks=weights_interval_blocks, seed_window_blocks=seed_window_blocks,
        eligibility_margin_blocks=eligibility_margin_blocks, scoring_mode=scoring_mode,
        min_free_disk_bytes=int(min_free_disk_gb * 1024**3), wandb_project=None if wandb_off else wandb_project,
        keep_loss_rounds=keep_loss_rounds, keep_summary_rounds=keep_summary_rounds,
        state_lock_wait_s=state_lock_wait_s, worker_memory_gb=worker_memory_gb,
    )
    from subnet.validator.daemon import resolve_competitions

    try:
        config.validate()
        resolve_competitions(config)  # an unknown or devnet-only --competition is a usage error
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    level = "TRACE" if logging_trace else "DEBUG" if logging_debug else log_level
    setup_logging(level, log_format)
    config.device = _resolve_device(device)
    raise typer.Exit(exit_at_once_if_forced(run_validator(config)))


def _resolve_device(device: str) -> str:
    """Indexed devices, comma-separated (one scoring worker per device); a bad value is a usage error."""
    from subnet.devices import DeviceError, resolve_devices

    try:
        return ",".join(resolve_devices(device))
    except DeviceError as e:
        raise typer.BadParameter(str(e), param_hint="--device") from None


def run_from_argv(argv: list[str]) -> int:
    """`python neurons/validator.py --netuid 9 ...`: the same as `subnet validator run --netuid 9 ...`."""
    args = list(argv)
    if not args or args[0] != "run":
        args = ["run", *args]
    return run_command(app, args, prog_name="validator")
