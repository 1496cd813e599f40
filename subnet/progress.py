"""Progress of long work (scoring documents, downloading): a bar for a person, ETA lines for a log.

On a terminal a rich bar shows done/total, rate and time left. Anywhere else (a file, journald, CI)
a bar would be noise or nothing, so a log line with the same numbers and an ETA is written every
`every_s` seconds and at the end.
"""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("subnet.progress")


def _terminal() -> bool:
    from subnet.logs import interactive

    root = logging.getLogger()
    if root.handlers:  # logging configured: follow its choice (rich on a terminal, lines otherwise)
        return interactive()
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def eta_text(done: float, total: float, elapsed: float) -> str:
    if done <= 0 or total <= 0 or elapsed <= 0:
        return "ETA unknown"
    left = max(0.0, (total - done) * elapsed / done)
    minutes, seconds = divmod(int(round(left)), 60)
    return f"ETA {minutes}m{seconds:02d}s" if minutes else f"ETA {seconds}s"


class WorkProgress:
    """`with WorkProgress("scoring uid 3", total=640, unit="docs") as p: ... p.advance(n)`."""

    def __init__(self, description: str, total: int, unit: str = "items", *, every_s: float = 10.0,
                 bar: bool | None = None) -> None:
        self.description, self.total, self.unit, self.every_s = description, int(total), unit, every_s
        self.bar = _terminal() if bar is None else bar
        self.done = 0
        self._started = self._last_line = 0.0
        self._progress = self._task = None

    def __enter__(self) -> "WorkProgress":
        self._started = self._last_line = time.monotonic()
        if self.bar:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            counts = ((DownloadColumn(), TransferSpeedColumn()) if self.unit == "bytes"
                      else (MofNCompleteColumn(), TextColumn(self.unit)))
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), *counts, TimeRemainingColumn(),
                                      console=Console(stderr=True), transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total)
        return self

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._progress is not None:
            self._progress.advance(self._task, n)
            return
        now = time.monotonic()
        if now - self._last_line >= self.every_s and self.done < self.total:
            self._last_line = now
            log.info("%s: %s, %s", self.description, self._count(), eta_text(self.done, self.total, now - self._started))

    def __exit__(self, *exc_info) -> None:
        if self._progress is not None:
            self._progress.stop()
        elif exc_info[0] is None and self.total:
            elapsed = time.monotonic() - self._started
            log.info("%s: %s in %.1f s", self.description, self._count(), elapsed)

    def _count(self) -> str:
        if self.unit == "bytes":
            return f"{self.done / 1e6:,.1f}/{self.total / 1e6:,.1f} MB"
        return f"{self.done}/{self.total} {self.unit}"
