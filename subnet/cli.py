"""The `subnet` command. Each area owns its sub-commands in its own module; this file only wires them."""

from __future__ import annotations

import importlib

import typer

from subnet.cli_support import CONTEXT_SETTINGS, run_command

app = typer.Typer(
    name="subnet",
    help="Validator, miner and tools for a Bittensor pretraining subnet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT_SETTINGS,
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

# (module, attribute, name): modules that define a typer app (a group) or register commands.
_GROUPS = [
    ("subnet.miner.cli", "app", "miner"),
    ("subnet.validator.cli", "app", "validator"),
    ("subnet.model_check", "app", "model"),
]
_COMMAND_MODULES = ["subnet.devnet", "subnet.scores", "subnet.schedule_cli"]


def _optional_module(name: str):
    """Import an area's CLI module; an area not installed simply has no commands."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise
        return None


def _wire() -> None:
    for module_name, attr, name in _GROUPS:
        module = _optional_module(module_name)
        if module is not None:
            app.add_typer(getattr(module, attr), name=name)
    for module_name in _COMMAND_MODULES:
        module = _optional_module(module_name)
        if module is not None:
            module.register(app)


_wire()


@app.command()
def version() -> None:
    """Print the package version, git commit and the weights version key."""
    from subnet import version_string

    typer.echo(version_string())


def main() -> None:
    raise SystemExit(run_command(app, prog_name="subnet"))


if __name__ == "__main__":
    main()
