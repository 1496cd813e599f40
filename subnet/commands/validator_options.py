"""The options of `subnet validator run`, built from `ValidatorConfig`'s fields, plus the few that
are not settings (logging, bittensor's --subtensor.chain_endpoint, --wandb.off).

An option is written once, on its config field (`subnet.validator.config.setting`): this module turns
those fields into typer options and the parsed values back into a `ValidatorConfig`.
"""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields
from typing import Any, Callable, Optional, get_type_hints

import typer

from subnet.logs import LOG_FORMATS, LOG_LEVELS
from subnet.validator.config import _SAME, Flag, ValidatorConfig


def _choice(values: tuple[str, ...]):
    """Case-insensitive choice: a bad value is a one-line usage error naming the choices."""
    def check(value: str) -> str:
        if value is not None and value.upper() not in {v.upper() for v in values}:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(values)}")
        return value

    return check


# name: (type, default, typer option) of the options that configure the process, not the validator.
EXTRA_OPTIONS: dict[str, tuple[Any, Any, Any]] = {
    "chain_endpoint": (Optional[str], None, typer.Option(
        None, "--subtensor.chain_endpoint", "--chain-endpoint", envvar="SUBNET_CHAIN_ENDPOINT",
        help="A ws(s):// endpoint; overrides --network (bittensor's spelling).")),
    "wandb_off": (bool, False, typer.Option(False, "--wandb.off", "--wandb-off", envvar="SUBNET_WANDB_OFF",
                                            help="Never log to Weights & Biases, even with WANDB_PROJECT set.")),
    "log_level": (str, "INFO", typer.Option("INFO", "--log-level", envvar="SUBNET_LOG_LEVEL",
                                            callback=_choice(LOG_LEVELS), help=" | ".join(LOG_LEVELS))),
    "log_format": (str, "auto", typer.Option(
        "auto", "--log-format", envvar="SUBNET_LOG_FORMAT", callback=_choice(LOG_FORMATS),
        help="auto (rich on a terminal, plain dated lines otherwise) | rich | plain | json (one object per line)")),
    "logging_debug": (bool, False, typer.Option(False, "--logging.debug", help="Same as --log-level DEBUG.")),
    "logging_trace": (bool, False, typer.Option(False, "--logging.trace", help="Same as --log-level TRACE.")),
}


def _cli_fields():
    for f in fields(ValidatorConfig):
        flag = f.metadata.get("cli")
        if isinstance(flag, Flag):
            yield f, flag


def parameters() -> list[inspect.Parameter]:
    """Keyword parameters, typer options as defaults, for every CLI setting and the extras."""
    params = []
    types = get_type_hints(ValidatorConfig)  # the fields' annotations as types, not strings
    for f, flag in _cli_fields():
        default = f.default if flag.cli_default is _SAME else flag.cli_default
        kind = types[f.name] if flag.cli_type is _SAME else flag.cli_type
        assert default is not MISSING, f.name
        option = typer.Option(default, *flag.flags, envvar=list(flag.env) or None, help=flag.help)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind))
    for name, (kind, _, option) in EXTRA_OPTIONS.items():
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind))
    return params


def with_options(function: Callable) -> Callable:
    """`function(**values)` given the signature typer reads the options from."""
    params = parameters()
    function.__signature__ = inspect.Signature(params)
    function.__annotations__ = {p.name: p.annotation for p in params}
    return function


def config_from(values: dict[str, Any]) -> ValidatorConfig:
    """The config the parsed options describe (the extras are read by the command itself)."""
    settings = {}
    for f, flag in _cli_fields():
        value = values[f.name]
        settings[f.name] = flag.to_config(value) if flag.to_config else value
    if values.get("chain_endpoint"):
        settings["network"] = values["chain_endpoint"]
    if settings["netuid"] is None:  # the devnet's own subnet is 1; elsewhere validate() asks for --netuid
        settings["netuid"] = 1 if str(settings["network"]).startswith("devnet:") else -1
    if values.get("wandb_off"):
        settings["wandb_project"] = None
    return ValidatorConfig(**settings)


def log_level(values: dict[str, Any]) -> str:
    return "TRACE" if values["logging_trace"] else "DEBUG" if values["logging_debug"] else values["log_level"]
