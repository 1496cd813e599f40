"""Whether a process id still names a running process: how leftovers of killed runs are told apart."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True while `pid` runs (someone else's process counts); False once it is gone or a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True
