"""Stop signals: the first asks for a clean stop, a second stops at once (and ends the process at once)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Callable

log = logging.getLogger("subnet.validator.daemon")  # the daemon's lines, wherever the code lives


def install_signal_handlers(stop: threading.Event, bound_s: float | None = None) -> Callable[[], None]:
    """First SIGTERM/SIGINT: stop after the model in progress (within `bound_s`). Second: stop now.

    Returns a restore function."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def handle(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        log.info("received %s: stopping after the model in progress%s (again to stop now)",
                 signal.Signals(signum).name, f", within {bound_s:.0f} s" if bound_s else "")
        stop.set()

    for s in previous:
        signal.signal(s, handle)

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    return restore


FORCED_STOP = 130  # run_validator's code after a second signal (or Ctrl-C twice)


def exit_at_once_if_forced(code: int) -> int:
    """After a forced stop, end the process now: everything of ours is closed by then, and the
    interpreter's own teardown (torch, transformers) takes seconds that a second signal must not wait.
    Any other code is returned for the caller's normal exit."""
    if code != FORCED_STOP:
        return code
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
