"""Conventions every `subnet` command keeps: -h works and every option says what it does."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from subnet.commands.main import app


def _commands(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, path + (name,))


def test_every_option_of_every_command_has_help():
    root = typer.main.get_command(app)
    missing = [f"{' '.join(path)} {param.opts[0]}" for path, command in _commands(root)
               for param in command.params
               if param.param_type_name == "option" and not getattr(param, "help", None)]
    assert not missing, f"options without help text: {missing}"


def test_dash_h_is_help_everywhere():
    root = typer.main.get_command(app)
    for path, _ in _commands(root):
        result = CliRunner().invoke(app, [*path, "-h"])
        assert result.exit_code == 0 and "Usage" in result.output, (path, result.output[-500:])
