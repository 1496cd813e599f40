"""`subnet validator run` (and `python neurons/validator.py`): flags in the bittensor style.

Every flag also reads an environment variable (SUBNET_NETUID, SUBNET_NETWORK, ...; btcli's BT_NETWORK,
BT_WALLET, BT_WALLET_HOTKEY, BT_WALLET_PATH as fallbacks), so a container can be configured without a
command line. The spellings of bittensor's own neurons (--subtensor.network, --subtensor.chain_endpoint,
--wallet.name, --logging.debug, --wandb.off ...) are accepted, so existing launch scripts carry over.
The options are defined once, on `ValidatorConfig`'s fields (`subnet.commands.validator_options`).
"""

from __future__ import annotations

from typing import Any

import typer

from subnet.commands.boundary import (
    CONTEXT_SETTINGS,
    EXIT_CODES_EPILOG,
    BoundaryGroup,
    UsageProblem,
    load_option_file,
    run_command,
)
from subnet.commands.validator_options import config_from, log_level, with_options

app = typer.Typer(help="Run a validator.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, context_settings=CONTEXT_SETTINGS, cls=BoundaryGroup,
                  epilog=EXIT_CODES_EPILOG)


@app.callback()
def _group() -> None:
    """Validator commands."""


def run(**options: Any) -> None:
    """Evaluate miners' models round after round and set weights."""
    from subnet.logs import setup_logging
    from subnet.validator.daemon import resolve_competitions, run_validator
    from subnet.validator.daemon_signals import exit_at_once_if_forced

    # Files named on the command line first: a malformed one costs nothing (no wallet read, no state).
    if options["competitions_file"]:
        load_option_file("--competitions-file", options["competitions_file"], _competitions, "competitions")
    if options["schedule_file"]:
        load_option_file("--schedule-file", options["schedule_file"], _schedule, "schedule")
    config = config_from(options)
    try:
        config.validate()
        resolve_competitions(config)  # an unknown or devnet-only --competition is a usage error
    except ValueError as e:
        raise UsageProblem(str(e)) from None
    setup_logging(log_level(options), options["log_format"])
    config.device = _resolve_device(config.device)
    raise typer.Exit(exit_at_once_if_forced(run_validator(config)))


app.command("run")(with_options(run))


def _competitions(path):
    """The file's competitions, each with a dataset a round can read (else its first round failed)."""
    from subnet.competitions import load_competitions
    from subnet.data.sources import make_source

    table = load_competitions(path)
    for competition in table.values():
        make_source(competition)  # only names are checked here: nothing is fetched
    return table


def _schedule(path):
    from subnet.data.sources import make_source
    from subnet.schedule import load_schedule

    schedule = load_schedule(path)
    for competition in schedule.all_competitions().values():
        make_source(competition)
    return schedule


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
