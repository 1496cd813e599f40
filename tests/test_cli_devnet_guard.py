"""`subnet devnet --dir DIR` deletes only what a devnet created (a directory with notes.txt was wiped)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from subnet.commands.devnet import MARKER, DevnetDirectoryError, prepare_directory


def test_refuses_a_non_empty_directory_it_did_not_create(tmp_path):
    (tmp_path / "notes.txt").write_text("precious")
    with pytest.raises(DevnetDirectoryError, match="--force"):
        prepare_directory(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_reuses_its_own_directory_and_empty_or_new_ones(tmp_path):
    new = prepare_directory(tmp_path / "fresh")
    assert (new / MARKER).exists()
    (new / "chain.sqlite").write_text("old run")
    again = prepare_directory(tmp_path / "fresh")
    assert sorted(p.name for p in again.iterdir()) == [MARKER]
    (tmp_path / "empty").mkdir()
    assert (prepare_directory(tmp_path / "empty") / MARKER).exists()


def test_force_wipes_a_foreign_directory(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("x")
    root = prepare_directory(tmp_path / "d", force=True)
    assert sorted(p.name for p in root.iterdir()) == [MARKER]


def test_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DevnetDirectoryError, match="is a file"):
        prepare_directory(tmp_path / "f", force=True)


def test_cli_refusal_is_one_line_exit_1_and_keeps_the_files(tmp_path):
    (tmp_path / "notes.txt").write_text("precious")
    proc = subprocess.run([sys.executable, "-m", "subnet", "devnet", "--dir", str(tmp_path), "--api-port", "0"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "40"})
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--force" in lines[0], proc.stderr
    assert (tmp_path / "notes.txt").read_text() == "precious"
