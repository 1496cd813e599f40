"""What every `subnet` command shares: `-h`, one-line errors and their exit codes.

A person (or a supervisor script) reading a failed command wants one line that says what is wrong,
and an exit code that says whose fault it is: 2 for a usage error (a flag, a value), 1 for a
domain error (a missing key, an unregistered hotkey, a port in use), 130 after Ctrl-C. Tracebacks
are for bugs only.
"""

from __future__ import annotations

import sys
from typing import Sequence

import typer

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}
EXIT_DOMAIN = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A problem the user can fix (keys, registration, ports, files): reported as one line, exit 1."""

    exit_code = EXIT_DOMAIN


def fail(message: str, code: int = EXIT_DOMAIN) -> None:
    """Print `error: message` on stderr and exit with `code`; never returns."""
    typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(code)


def one_line(message: str) -> str:
    return " ".join(str(message).split())


def run_command(app: typer.Typer, args: Sequence[str] | None = None, prog_name: str = "subnet") -> int:
    """Run a typer app and turn its errors into one line and an exit code (never a traceback for
    a usage or domain error)."""
    click_errors = _click_exceptions()
    command = typer.main.get_command(app)
    try:
        result = command.main(args=list(sys.argv[1:] if args is None else args), prog_name=prog_name,
                              standalone_mode=False)
    except click_errors.UsageError as e:
        path = e.ctx.command_path if e.ctx is not None else prog_name
        typer.echo(f"{path}: error: {one_line(e.format_message())} (see {path} -h)", err=True)
        return EXIT_USAGE
    except click_errors.ClickException as e:
        typer.echo(f"error: {one_line(e.format_message())}", err=True)
        return e.exit_code
    except CommandError as e:
        typer.echo(f"error: {one_line(str(e))}", err=True)
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except typer.Exit as e:
        return int(e.exit_code)
    return int(result) if isinstance(result, int) else 0


def _click_exceptions():
    """The click exceptions typer raises: newer typer vendors click as `typer._click`, older typer
    runs on the click package itself (pyproject allows both)."""
    import importlib

    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            return importlib.import_module(module)
        except ImportError:
            continue
    raise ImportError("typer has neither a vendored click nor the click package")

