"""A validator and miner for a Bittensor pretraining subnet."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

__version__ = "0.1.0"

# Sent with every set_weights call so that the chain can reject weights from outdated validators.
# Encodes major*10_000 + minor*100 + patch.
VERSION_KEY = 100


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit the running code came from, so an operator can tell which build answers.

    SUBNET_GIT_COMMIT wins (images built without .git set it); else `git rev-parse` in the source
    checkout; else "unknown" (an installed wheel).
    """
    commit = os.environ.get("SUBNET_GIT_COMMIT", "").strip()
    if commit:
        return commit[:40]
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return "unknown"
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def version_string() -> str:
    return f"subnet {__version__} (commit {git_commit()}, version_key {VERSION_KEY})"
