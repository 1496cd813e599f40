"""The `subnet` command. Each area owns its sub-commands in its own module; this file only wires them."""

from __future__ import annotations

import typer

from subnet.commands import (
    competitions_list,
    devnet,
    miner_commands,
    model_check,
    scores,
    validator_commands,
)
from subnet.commands.boundary import CONTEXT_SETTINGS, EXIT_CODES_EPILOG, BoundaryGroup, run_command

app = typer.Typer(
    name="subnet",
    help="Validator, miner and tools for a Bittensor pretraining subnet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT_SETTINGS,
    cls=BoundaryGroup,
    epilog=EXIT_CODES_EPILOG,
)


def _print_version(value: bool) -> None:
    if value:
        from subnet import version_string

        typer.echo(version_string())
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", callback=_print_version, is_eager=True,
                                           help="Print the version and git commit, then exit."),
) -> None:
    """Validator, miner and tools for a Bittensor pretraining subnet."""

app.add_typer(miner_commands.app, name="miner")
app.add_typer(validator_commands.app, name="validator")
app.add_typer(model_check.app, name="model")
for _module in (devnet, scores, competitions_list):
    _module.register(app)


@app.command()
def version() -> None:
    """Print the package version, git commit and the weights version key."""
    from subnet import version_string

    typer.echo(version_string())


def main() -> None:
    raise SystemExit(run_command(app, prog_name="subnet"))


if __name__ == "__main__":
    main()
