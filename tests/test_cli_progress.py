"""Progress in log-line mode: lines with done/total and an ETA, never a bar, when not on a terminal."""

from __future__ import annotations

import io
import logging

from subnet.logs import setup_logging
from subnet.progress import WorkProgress, eta_text


def test_eta_text():
    assert eta_text(25, 100, 10.0) == "ETA 30s"
    assert eta_text(10, 100, 60.0) == "ETA 9m00s"
    assert eta_text(0, 100, 5.0) == "ETA unknown"


def test_log_lines_with_eta_when_output_is_a_file():
    stream = io.StringIO()
    setup_logging("INFO", "auto", stream=stream)  # StringIO is not a terminal: plain lines
    try:
        with WorkProgress("scoring uid 3", total=4, unit="docs", every_s=0.0) as progress:
            assert not progress.bar
            for _ in range(4):
                progress.advance()
    finally:
        logging.basicConfig(force=True, handlers=[logging.NullHandler()])
    lines = stream.getvalue().splitlines()
    assert any("scoring uid 3: 1/4 docs, ETA" in line for line in lines), lines
    assert "scoring uid 3: 4/4 docs in" in lines[-1]
