"""Ctrl-C and SIGTERM as a request to stop cleanly, for long jobs that have a safe point to stop at.

The first signal sets an event that the job checks at its next safe point (a training step, a
round step); a second one raises KeyboardInterrupt at once, for a person who really means it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator


@contextlib.contextmanager
def stop_requested_on_signals(stop: threading.Event, announce: Callable[[str], None] = print) -> Iterator[threading.Event]:
    """Within the block, SIGINT/SIGTERM set `stop` (a second one interrupts); handlers restored after.
    Outside the main thread signals cannot be caught: the block runs with the handlers unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handle(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        announce(f"received {signal.Signals(signum).name}: stopping at the next safe point (again to stop now)")
        stop.set()

    for s in previous:
        signal.signal(s, handle)
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
