"""At the daemon's exit, nothing it started by `multiprocessing` outlives it."""

from __future__ import annotations

import multiprocessing as mp

from subnet.eval.worker import WORKER_NAME_PREFIX


def stop_children(timeout_s: float = 2.0) -> None:
    """At the daemon's exit: no worker, and no resource tracker process, outlives it.

    The tracker (started by the first spawned worker) ignores SIGTERM and would otherwise end only
    once every inherited copy of its pipe is closed.
    """
    for child in mp.active_children():
        if child.name.startswith(WORKER_NAME_PREFIX):  # ours; another component's children are its own
            child.kill()
            child.join(timeout_s)
    from multiprocessing import resource_tracker

    tracker = getattr(resource_tracker, "_resource_tracker", None)
    if tracker is None or getattr(tracker, "_pid", None) is None or mp.active_children():
        return
    try:
        tracker._stop()  # closes its pipe and reaps it; it exits at once with no other holder left
    except Exception:  # noqa: BLE001 - best effort at exit: the tracker also ends with its last holder
        pass
