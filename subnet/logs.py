"""Logging for long-running commands: readable on a terminal, greppable in a file, parseable as JSON.

A validator runs for weeks with its output in journald, pm2 or a file. There, every line must carry
the full date and time and must never be wrapped to a terminal width (a wrapped traceback cannot be
grepped). So rich's pretty handler is used only when stderr is a terminal; everywhere else each
record is one `2026-01-31T12:00:00.123+00:00 INFO    logger: message` line, or with
`--log-format json` one JSON object per line (tracebacks included as a string field).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import TextIO

LOG_FORMATS = ("auto", "rich", "plain", "json")
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR")
TRACE = 5  # bittensor's --logging.trace: more than DEBUG
logging.addLevelName(TRACE, "TRACE")

# Attributes every LogRecord has; anything else was passed with `extra=` and goes into the JSON object.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def iso_time(created: float) -> str:
    """Local ISO 8601 date-time with milliseconds and the UTC offset: sortable and unambiguous."""
    return dt.datetime.fromtimestamp(created).astimezone().isoformat(timespec="milliseconds")


class PlainFormatter(logging.Formatter):
    """`DATE-TIME LEVEL logger: message`, one line per record (a traceback follows on its own lines)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{iso_time(record.created)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record; `extra=` fields are kept, so a log pipeline can filter on them."""

    def format(self, record: logging.LogRecord) -> str:
        data = {"ts": iso_time(record.created), "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


def resolve_format(fmt: str, stream: TextIO | None = None) -> str:
    """`auto` is `rich` on a terminal and `plain` anywhere else (a file, a pipe, journald)."""
    fmt = fmt.lower()
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    if fmt != "auto":
        return fmt
    stream = sys.stderr if stream is None else stream
    try:
        return "rich" if stream.isatty() else "plain"
    except (AttributeError, ValueError):  # closed or odd streams
        return "plain"


def parse_level(level: str) -> int:
    name = level.upper()
    if name not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return TRACE if name == "TRACE" else getattr(logging, name)


def setup_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> str:
    """Configure the root logger; returns the format used. Raises ValueError on a bad level or format."""
    numeric = parse_level(level)
    resolved = resolve_format(fmt, stream)
    stream = sys.stderr if stream is None else stream
    if resolved == "rich":
        from rich.console import Console
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=Console(file=stream), show_path=False,
                                               rich_tracebacks=False, log_time_format="%Y-%m-%d %H:%M:%S")
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter() if resolved == "json" else PlainFormatter())
    logging.basicConfig(level=numeric, handlers=[handler], force=True)
    logging.captureWarnings(True)
    return resolved


def interactive() -> bool:
    """True when the root logger draws on a terminal (rich): progress bars are drawn, not logged."""
    from rich.logging import RichHandler

    return any(isinstance(h, RichHandler) for h in logging.getLogger().handlers)
