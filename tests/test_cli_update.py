"""scripts/update.sh against real git repositories: fast-forward, reinstall, self-check, restart, or roll back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "update.sh"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path):
    """An upstream repository and a deployed clone of it with a .venv whose python is this one."""
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    git(upstream, "init", "-q", "-b", "main")
    git(upstream, "config", "user.email", "t@example.org")
    git(upstream, "config", "user.name", "t")
    (upstream / "Makefile").write_text("install:\n\ttest ! -f BROKEN\n")
    (upstream / "VERSION").write_text("1\n")
    git(upstream, "add", "-A")
    git(upstream, "commit", "-qm", "v1")
    deployed = tmp_path / "deployed"
    git(tmp_path, "clone", "-q", str(upstream), str(deployed))
    (deployed / ".venv" / "bin").mkdir(parents=True)
    python = deployed / ".venv" / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    (deployed / ".git" / "info" / "exclude").write_text(".venv\n")
    return upstream, deployed


def update(deployed: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SUBNET_DIR": str(deployed), "SUBNET_RESTART": f"touch {deployed / 'restarted'}",
           "PYTHONPATH": str(SCRIPT.parent.parent)}
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120, env=env)


def commit(upstream: Path, name: str, content: str, message: str) -> str:
    (upstream / name).write_text(content)
    git(upstream, "add", "-A")
    git(upstream, "commit", "-qm", message)
    return git(upstream, "rev-parse", "HEAD")


def test_up_to_date_does_nothing(checkout):
    _, deployed = checkout
    proc = update(deployed)
    assert proc.returncode == 0 and "up to date" in proc.stdout, proc.stderr
    assert not (deployed / "restarted").exists()


def test_new_commit_is_installed_checked_and_restarted(checkout):
    upstream, deployed = checkout
    new = commit(upstream, "VERSION", "2\n", "v2")
    proc = update(deployed)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert git(deployed, "rev-parse", "HEAD") == new
    assert "subnet " in proc.stdout and (deployed / "restarted").exists()


def test_failed_install_rolls_back_and_keeps_the_service(checkout):
    upstream, deployed = checkout
    old = git(deployed, "rev-parse", "HEAD")
    commit(upstream, "BROKEN", "x", "breaks the install")
    proc = update(deployed)
    assert proc.returncode == 1 and "rolling back" in proc.stdout, proc.stdout + proc.stderr
    assert git(deployed, "rev-parse", "HEAD") == old
    assert not (deployed / "restarted").exists()


def test_local_changes_are_never_overwritten(checkout):
    upstream, deployed = checkout
    commit(upstream, "VERSION", "2\n", "v2")
    (deployed / "VERSION").write_text("my local edit\n")
    proc = update(deployed)
    assert proc.returncode == 2 and "local changes" in proc.stdout
    assert (deployed / "VERSION").read_text() == "my local edit\n"
