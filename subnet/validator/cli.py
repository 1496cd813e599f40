"""`subnet validator run` (and `python neurons/validator.py`): flags in the bittensor style.

Every flag also reads an environment variable (SUBNET_NETUID, SUBNET_NETWORK, ...), so a
container can be configured without a command line.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional

import typer

from subnet.validator.config import ValidatorConfig

app = typer.Typer(help="Run a validator.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)


@app.callback()
def _group() -> None:
    """Validator commands."""


@app.command("run")
def run(
    netuid: int = typer.Option(1, "--netuid", envvar="SUBNET_NETUID", help="Subnet id."),
    network: str = typer.Option("finney", "--network", "--subtensor.network", envvar="SUBNET_NETWORK",
                                help="finney | test | local | ws(s)://URL | devnet:PATH"),
    wallet_name: str = typer.Option("default", "--wallet.name", envvar="SUBNET_WALLET_NAME"),
    wallet_hotkey: str = typer.Option("default", "--wallet.hotkey", envvar="SUBNET_WALLET_HOTKEY"),
    wallet_path: str = typer.Option("~/.bittensor/wallets", "--wallet.path", envvar="SUBNET_WALLET_PATH"),
    device: str = typer.Option("auto", "--device", envvar="SUBNET_DEVICE",
                               help="auto (cuda when available), cuda, cuda:1, cpu ..."),
    state_dir: Path = typer.Option(Path("~/.subnet/validator"), "--state-dir", envvar="SUBNET_STATE_DIR"),
    competition: Optional[List[str]] = typer.Option(
        None, "--competition", envvar="SUBNET_COMPETITION",
        help="Competition to evaluate (repeatable). Default: all with a reward share (devnet: tiny)."),
    competitions_file: Optional[Path] = typer.Option(None, "--competitions-file", envvar="SUBNET_COMPETITIONS_FILE"),
    api_host: str = typer.Option("127.0.0.1", "--api-host", envvar="SUBNET_API_HOST"),
    api_port: int = typer.Option(8091, "--api-port", envvar="SUBNET_API_PORT", help="0 turns the API off."),
    dont_set_weights: bool = typer.Option(False, "--dont-set-weights", envvar="SUBNET_DONT_SET_WEIGHTS"),
    store: str = typer.Option("hf", "--store", envvar="SUBNET_STORE", help="hf | local:DIR"),
    hf_endpoint: Optional[str] = typer.Option(None, "--hf-endpoint", envvar="HF_ENDPOINT"),
    data_endpoint: Optional[str] = typer.Option(None, "--data-endpoint", envvar="SUBNET_DATA_ENDPOINT"),
    round_interval_s: float = typer.Option(600.0, "--round-interval-s", envvar="SUBNET_ROUND_INTERVAL_S"),
    max_rounds: Optional[int] = typer.Option(None, "--max-rounds", envvar="SUBNET_MAX_ROUNDS"),
    timeout_per_model: float = typer.Option(600.0, "--timeout-per-model", envvar="SUBNET_TIMEOUT_PER_MODEL"),
    max_models: int = typer.Option(16, "--max-models-per-round", envvar="SUBNET_MAX_MODELS_PER_ROUND"),
    weights_interval_blocks: int = typer.Option(100, "--weights-interval-blocks",
                                                envvar="SUBNET_WEIGHTS_INTERVAL_BLOCKS"),
    seed_window_blocks: int = typer.Option(150, "--seed-window-blocks", envvar="SUBNET_SEED_WINDOW_BLOCKS"),
    eligibility_margin_blocks: int = typer.Option(10, "--eligibility-margin-blocks",
                                                  envvar="SUBNET_ELIGIBILITY_MARGIN_BLOCKS"),
    scoring_mode: str = typer.Option("worker", "--scoring-mode", envvar="SUBNET_SCORING_MODE",
                                     help="worker (a process per model) | inprocess"),
    min_free_disk_gb: float = typer.Option(5.0, "--min-free-disk-gb", envvar="SUBNET_MIN_FREE_DISK_GB"),
    wandb_project: Optional[str] = typer.Option(None, "--wandb-project", envvar="WANDB_PROJECT"),
    log_level: str = typer.Option("INFO", "--log-level", envvar="SUBNET_LOG_LEVEL"),
) -> None:
    """Evaluate miners' models round after round and set weights."""
    from subnet.validator.daemon import run_validator

    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    config = ValidatorConfig(
        netuid=netuid, network=network, wallet_name=wallet_name, wallet_hotkey=wallet_hotkey,
        wallet_path=wallet_path, device=device, state_dir=state_dir, competitions=tuple(competition or ()),
        competitions_file=competitions_file, store=store, hf_endpoint=hf_endpoint, data_endpoint=data_endpoint,
        api_host=api_host, api_port=api_port, set_weights=not dont_set_weights, round_interval_s=round_interval_s,
        max_rounds=max_rounds, timeout_per_model_s=timeout_per_model, max_models_per_round=max_models,
        weights_interval_blocks=weights_interval_blocks, seed_window_blocks=seed_window_blocks,
        eligibility_margin_blocks=eligibility_margin_blocks, scoring_mode=scoring_mode,
        min_free_disk_bytes=int(min_free_disk_gb * 1024**3), wandb_project=wandb_project,
    )
    try:
        config.validate()
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    _setup_logging(log_level)
    code = run_validator(config)
    raise typer.Exit(code)


def _setup_logging(level: str) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(level=level.upper(), format="%(message)s", datefmt="[%X]",
                        handlers=[RichHandler(show_path=False, rich_tracebacks=False)], force=True)


def run_from_argv(argv: list[str]) -> int:
    """`python neurons/validator.py --netuid 9 ...`: the same as `subnet validator run --netuid 9 ...`."""
    args = list(argv)
    if not args or args[0] != "run":
        args = ["run", *args]
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="validator", standalone_mode=False)
    except typer.Exit as e:
        return int(e.exit_code)
    except typer.Abort:
        return 130
    except Exception as e:  # typer's usage errors (vendored click): print them as click would
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            return int(e.exit_code)
        raise
    return int(result) if isinstance(result, int) else 0
