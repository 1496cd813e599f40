"""What every `subnet` command shares: `-h`, one-line errors and their exit codes.

A person (or a supervisor script) reading a failed command wants one line that says what is wrong,
and an exit code that says whose fault it is. Every command, through `run_command`, keeps to:

    stderr  exactly one line `error: <what is wrong>`, never wrapped to the terminal's width; a
            usage error names the flag (`error: --network: ...`) and ends `(see <command> -h)`
    exit 0  success
    exit 1  a domain error: a missing key, an unregistered hotkey, a port in use, a rejected model
    exit 2  a usage error: a flag, a value or a file given on the command line is wrong
    exit 130  interrupted (Ctrl-C)

Tracebacks are for bugs only. Commands raise `CommandError` (exit 1) or `UsageProblem` (exit 2),
or call `fail`; click's own usage errors are reworded here into the same form.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import typer
from typer.core import TyperGroup

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}
EXIT_DOMAIN = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_CODES_EPILOG = ("Exit codes: 0 success; 1 a domain error (keys, registration, ports, a rejected model); "
                     "2 a usage error (a flag, a value or a file given); 130 interrupted. Errors are one "
                     "line on stderr starting with 'error:'.")

T = TypeVar("T")


class CommandError(Exception):
    """A problem the user can fix (keys, registration, ports, files): reported as one line, exit 1."""

    exit_code = EXIT_DOMAIN


class UsageProblem(CommandError):
    """Something given on the command line is wrong (a flag's value, a file it names): exit 2."""

    exit_code = EXIT_USAGE


class BoundaryGroup(TyperGroup):
    """A command group that reports a `CommandError` from any command below it as one line and its
    exit code, also where `run_command` is not in the way (typer's CliRunner, an embedding script);
    and whose help screens, and those of every command below it, use `readable_help`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        readable_help(self)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CommandError as e:
            typer.echo(f"error: {one_line(str(e))}", err=True)
            raise typer.Exit(e.exit_code) from None


def fail(message: str, code: int = EXIT_DOMAIN) -> None:
    """Print `error: message` on stderr and exit with `code`; never returns."""
    typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(code)


def one_line(message: str) -> str:
    return " ".join(str(message).split())


def load_option_file(flag: str, path: Path, load: Callable[[Path], T], kind: str) -> T:
    """`load(path)`, its failure (a `ValueError`) as the usage error `flag PATH: what is wrong`.

    Called before anything else is opened or created, so a malformed file costs nothing. `kind`
    ('competitions', 'schedule') is how the loader names the file; it is not repeated."""
    try:
        return load(path)
    except ValueError as e:
        what = str(e).replace(f" {kind} file {path}", "").replace(f"{kind} file {path}", "").lstrip(": ")
        raise UsageProblem(f"{flag} {path}: {what}") from None


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
        typer.echo(f"error: {usage_message(e, click_errors)} (see {path} -h)", err=True)
        return EXIT_USAGE
    except click_errors.ClickException as e:
        typer.echo(f"error: {one_line(e.format_message())}", err=True)
        return e.exit_code
    except CommandError as e:
        typer.echo(f"error: {one_line(str(e))}", err=True)
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("error: interrupted", err=True)
        return EXIT_INTERRUPTED
    except typer.Exit as e:
        return int(e.exit_code)
    return int(result) if isinstance(result, int) else 0


def readable_help(command):
    """Help screens in the usual notation: a flag shows no value (typer writes `--json <bool>`), a
    repeatable option its element and `...` (`--competition TEXT ...`, not `<list[str]>`)."""
    for param in command.params:
        if getattr(param, "is_flag", False) or getattr(param, "is_bool_flag", False):
            param.metavar = ""
        elif param.param_type_name == "option" and getattr(param, "multiple", False):
            param.metavar = f"{_element_name(param)} ..."
        elif param.param_type_name == "argument" and param.nargs != 1 and hasattr(param, "display_type_rich"):
            label = f"{_element_name(param)} ..."
            param.display_type_rich = lambda ctx, label=label: label  # typer's column would say <list[Path]>
    command.get_help_option = _plain_help_option(command.get_help_option)  # click makes -h on demand
    for sub in getattr(command, "commands", {}).values():
        readable_help(sub)
    return command


def _plain_help_option(make):
    def get_help_option(ctx):
        option = make(ctx)
        if option is not None:
            option.metavar = ""
        return option

    return get_help_option


def _element_name(param) -> str:
    """TEXT, INTEGER, FLOAT, PATH: the element of a repeatable option, from typer's annotation (newer
    typer) or click's type (older typer)."""
    from typing import get_args

    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        element = next(iter(get_args(descriptor.annotation)), str)
        return {str: "TEXT", int: "INTEGER", float: "FLOAT", Path: "PATH"}.get(element, "VALUE")
    return str(getattr(getattr(param, "type", None), "name", "value")).upper()


def _flag_name(param, ctx) -> str:
    """`--netuid`, and where the bad value came from the environment, `--netuid (from SUBNET_NETUID)`."""
    opts = getattr(param, "opts", None)
    if opts and opts[0].startswith("-"):
        name = opts[0]
    else:  # an argument: its metavar (PATH), as the usage line shows it
        name = str(getattr(param, "metavar", None) or getattr(param, "human_readable_name", None)
                   or (param.name or "argument").upper())
    source = ctx.get_parameter_source(param.name) if ctx is not None and param.name else None
    if source is not None and source.name == "ENVIRONMENT" and param.envvar:
        names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
        name += f" (from {' or '.join(names)})"
    return name


def usage_message(error, click_errors) -> str:
    """A click usage error in our words: `--flag: why` for a bad value, click's sentence otherwise."""
    if isinstance(error, click_errors.BadParameter) and not isinstance(error, click_errors.MissingParameter):
        hint = error.param_hint
        if hint is None and error.param is not None:
            hint = _flag_name(error.param, error.ctx)
        if isinstance(hint, (list, tuple)):
            hint = hint[0]
        if hint:
            return f"{str(hint).strip(chr(39))}: {one_line(error.message)}"
        return one_line(error.message)  # raised by a command, whose message names the flag itself
    return one_line(error.format_message())


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
