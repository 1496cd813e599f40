"""The containment boundary around everything done for one model: any failure becomes a verdict.

Listing, downloading, hashing and checking a miner's files run our code on hostile input, so
any exception may come out of them. `classify` turns every one into a `Failure` with a reason
and a detail, and decides who is to blame:

- `ModelRejected`: a property of what the store serves for the pinned revision. Permanent.
- `StoreError`: the store's answer; transient unless the store says otherwise.
- our disk (`DiskFull`, any `OSError`), the fetch deadline, and any other exception (a bug in
  our checks, `MemoryError`, `RecursionError`, ...): transient, retried and then parked, since
  blaming the miner for them would fail good models for our faults.

`run_with_deadline` runs the work on a worker thread, so a slow store or check can be abandoned
at its deadline and the caller keeps answering its stop signal meanwhile.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from subnet.hub.download import FetchDeadline
from subnet.hub.errors import ModelRejected
from subnet.hub.store import StoreError

T = TypeVar("T")
DETAIL_LIMIT = 2000


@dataclass(frozen=True)
class Failure:
    reason: str
    detail: str
    transient: bool


class StopRequested(RuntimeError):
    """The caller's stop signal was set while the work was still running."""


def _describe(exc: BaseException) -> str:
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"[:DETAIL_LIMIT]


def classify(exc: BaseException) -> Failure:
    """Who is to blame for `exc`, raised while fetching or checking one model, and why."""
    if isinstance(exc, ModelRejected):
        return Failure(exc.reason, exc.detail[:DETAIL_LIMIT], False)
    if isinstance(exc, StoreError):
        return Failure("store_unavailable" if exc.transient else "store_error", _describe(exc), exc.transient)
    if isinstance(exc, FetchDeadline):
        return Failure("fetch_timeout", _describe(exc), True)
    if isinstance(exc, OSError):
        reason = "disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "fetch_io_error"
        return Failure(reason, _describe(exc), True)
    if isinstance(exc, MemoryError):
        return Failure("check_out_of_memory", _describe(exc), True)
    return Failure("check_error", _describe(exc), True)


def run_with_deadline(work: Callable[[], T], timeout_s: float, *, stop: threading.Event | None = None,
                      poll_s: float = 0.1, name: str = "model-check") -> T:
    """`work()` on a daemon thread; its result or exception, FetchDeadline after `timeout_s`, or
    StopRequested as soon as `stop` is set. Work abandoned at a deadline finishes (or fails) on its own:
    every step of fetching writes to a private scratch directory, so it cannot corrupt the cache.
    """
    box: dict[str, object] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as e:  # noqa: BLE001 - handed to the caller, who classifies it
            box["error"] = e
        finally:
            done.set()

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not done.wait(min(poll_s, max(0.0, deadline - time.monotonic()))):
        if stop is not None and stop.is_set():
            raise StopRequested("stop requested while a model was being fetched or checked")
        if time.monotonic() >= deadline:
            raise FetchDeadline(f"fetching and checking took longer than {timeout_s:g} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
