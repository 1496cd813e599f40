"""How a training run shows its progress: a live bar on a terminal, plain log lines everywhere else.

A person watching `subnet miner train` wants a bar with the step, time left, loss, tokens/s and
(on GPU) model FLOP utilisation; CI logs, devnet and tests want one line every `log_every` steps,
which stays readable when captured. `TrainConfig.progress` picks: "bar", "lines", or "auto" (bar
only when stderr is a terminal and the caller did not pass its own `echo`).
"""

from __future__ import annotations

import sys
from typing import Callable, TextIO

PROGRESS_MODES = ("auto", "bar", "lines")


def wants_bar(mode: str, *, caller_echo: bool, stream: TextIO | None = None) -> bool:
    """Whether to draw the bar. A caller that passes its own `echo` (devnet, scripts, tests) is
    collecting lines, so "auto" keeps lines for it even on a terminal."""
    if mode not in PROGRESS_MODES:
        raise ValueError(f"progress mode must be one of {PROGRESS_MODES}, got {mode!r}")
    if mode != "auto":
        return mode == "bar"
    stream = sys.stderr if stream is None else stream
    return not caller_echo and stream.isatty()


def progress_line(step: int, steps: int, loss: float, lr: float, tokens_per_s: float, mfu: float | None) -> str:
    line = f"step {step:>6}/{steps}  loss {loss:.4f}  lr {lr:.2e}  {tokens_per_s:>10,.0f} tok/s"
    if mfu is not None:
        line += f"  mfu {mfu:.1%}"
    return line


class TrainProgress:
    """The loop's display: `advance()` after every step (cheap, reads nothing from the device) and
    `show(...)` at log steps. With `bar=False` it only echoes the log lines. Use as a context
    manager so the bar is closed (left on screen at its last state) even when training fails."""

    def __init__(self, *, bar: bool, total: int, done: int, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self._bar = None
        if bar:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._bar = Progress(
                TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("<"),
                TimeRemainingColumn(), TextColumn("{task.fields[stats]}"),
                # Stray prints go above the bar, but only if stdout shares the terminal with it.
                console=Console(stderr=True), redirect_stdout=sys.stdout.isatty(),
            )
            self._task = self._bar.add_task("train", total=total, completed=done, stats="")

    def __enter__(self) -> "TrainProgress":
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def show(self, step: int, steps: int, loss: float, lr: float, tokens_per_s: float, mfu: float | None) -> None:
        if self._bar is None:
            self.echo(progress_line(step, steps, loss, lr, tokens_per_s, mfu))
            return
        stats = f"loss {loss:.4f}  {tokens_per_s:,.0f} tok/s"
        if mfu is not None:
            stats += f"  mfu {mfu:.1%}"
        self._bar.update(self._task, completed=step, stats=stats)
