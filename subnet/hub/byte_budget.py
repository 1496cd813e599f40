"""A byte budget for one model download, enforced while the bytes stream.

A repo can lie about its sizes, so the listing's total is not enough: `hf_hub_download` reports
each chunk to the progress-bar class it is given, and `ByteBudget.bar` stands in for that class.
"""

from __future__ import annotations

import threading
from typing import Callable


class TooLarge(Exception):
    """Raised from inside the download stream to stop it the moment the budget is spent."""


class ByteBudget:
    """Counts streamed bytes across all files of one download and stops past `limit`.

    Each byte counts once however many bars report it (the xet path drives a transfer bar and a
    reconstruction bar for the same bytes): the file in flight counts as its largest bar. Raising
    in `update` stops the plain HTTP stream (the callback runs in the caller's thread). A callback
    on another thread (hf_xet's) may be swallowed, so `exceeded` is also set and the xet session
    aborted; the caller checks `exceeded` after each file whatever the library did.
    """

    def __init__(
        self, limit: int, on_bytes: Callable[[int], None] = lambda n: None, abort: Callable[[], None] | None = None
    ) -> None:
        self.limit = limit
        self.done = 0  # bytes of files already complete
        self.exceeded = False
        self._on_bytes = on_bytes  # told of each new byte once (a progress display)
        self._reported = 0
        self._bars: list[Bar] = []
        self._abort = abort or abort_xet
        self._caller = threading.get_ident()
        self._lock = threading.Lock()
        budget = self

        class Bar:
            def __init__(self, *args, **kwargs) -> None:
                self.n = int(kwargs.get("initial") or 0)
                with budget._lock:
                    budget._bars.append(self)

            def __enter__(self):
                return self

            def __exit__(self, *exc) -> None:
                return None

            def update(self, n=1) -> None:
                self.n += int(n or 0)
                budget._check()

            def close(self) -> None:
                pass

            def refresh(self, *a, **k) -> None:
                pass

            def set_postfix_str(self, *a, **k) -> None:
                pass

        self.bar = Bar

    @property
    def current(self) -> int:
        """Bytes of the file in flight: its largest bar, so bytes reported twice count once."""
        with self._lock:
            return max((b.n for b in self._bars), default=0)

    def _check(self) -> None:
        total = self.done + self.current
        if total > self._reported:
            self._on_bytes(total - self._reported)
            self._reported = total
        if total <= self.limit:
            return
        self.exceeded = True
        if threading.get_ident() != self._caller:
            self._abort()
        raise TooLarge(f"download passed {self.limit:,} bytes")

    def file_done(self, size: int) -> None:
        with self._lock:
            self._bars.clear()
        self.done += size
        self._reported = max(self._reported, self.done)


def abort_xet() -> None:
    """Cancel hf_xet's in-flight transfers (its own interrupt path); a no-op without hf_xet."""
    try:
        from huggingface_hub.utils._xet import abort_xet_session
    except ImportError:
        return
    abort_xet_session()
