"""Help screens in the usual notation (issue 29): typer wrote `--json <bool>` for every flag and leaked
`<list[str]>` for repeatable options. Over every command's -h: a flag shows no value, a repeatable
option its element and `...`."""

from __future__ import annotations

import re

import typer

from subnet.commands.boundary import run_command
from subnet.commands.main import app


def _commands(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, path + (name,))


def test_no_help_screen_shows_bool_or_list_metavars(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    screens = {}
    for path, _ in _commands(typer.main.get_command(app)):
        assert run_command(app, [*path, "-h"]) == 0, path
        screens[" ".join(path)] = capsys.readouterr().out
    leaks = {name: re.findall(r"<bool>|list\[\w*\]", text) for name, text in screens.items()}
    assert not {name: found for name, found in leaks.items() if found}, leaks
    assert re.search(r"--json\s+Print one JSON", screens["devnet"])  # a flag: no value after it
    assert re.search(r"--competition\s+TEXT \.\.\.\s", screens["validator run"])
    assert re.search(r"--dont-set-weights\s+Score and log", screens["validator run"])
