"""Leaderboard page at scale: 256 models x 1,000 rounds, served for real, rendered in headless Chromium.

Prints the page's size, each JSON endpoint's size and server time, and the in-browser time from the
start of a refresh to the finished render (the page records it on <body data-render-ms>).

    python scripts/bench_leaderboard.py [--models 256] [--rounds 1000]
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from subnet.validator.api import StatusServer, build_app  # noqa: E402
from subnet.validator.leaderboard import page_html  # noqa: E402
from subnet.validator.metrics import ValidatorMetrics  # noqa: E402
from subnet.validator.state import ValidatorState  # noqa: E402
from tests.leaderboard_fixtures import find_chromium, populate, render_dom  # noqa: E402


def fetch(url: str) -> tuple[int, float]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = r.read()
    return len(body), time.perf_counter() - start


def real_time_render(chromium: str, url: str, profile: Path, timeout_s: float = 60.0) -> tuple[float, float]:
    """Milliseconds from navigation start to the first finished render, and of that refresh alone.

    Driven over the DevTools protocol without virtual time, so the clock is the wall clock.
    """
    import json
    import subprocess

    from websockets.sync.client import connect

    proc = subprocess.Popen([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             f"--user-data-dir={profile}", "--window-size=1400,1600", "--remote-debugging-port=0",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline:
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t.get("type") == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
            ids = iter(range(1, 1_000_000))

            def call(method: str, **params):
                msg_id = next(ids)
                ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
                while True:
                    msg = json.loads(ws.recv(timeout=timeout_s))
                    if msg.get("id") == msg_id:
                        return msg.get("result", {})

            call("Page.navigate", url=url)
            expr = ("document.body && document.body.dataset.rendered ? [performance.now(), "
                    "Number(document.body.dataset.renderMs)] : null")
            while time.monotonic() < deadline:
                value = call("Runtime.evaluate", expression=expr, returnByValue=True)["result"].get("value")
                if value:
                    return float(value[0]), float(value[1])
                time.sleep(0.02)
            raise RuntimeError("the page did not finish rendering")
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--docs", type=int, default=256, help="documents per round (losses kept for the last 3)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = ValidatorState(Path(tmp) / "state.sqlite")
        start = time.perf_counter()
        populate(state, args.models, args.rounds, n_docs=args.docs)
        print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; state of {args.models} models x "
              f"{args.rounds} rounds built in {time.perf_counter() - start:.1f} s")
        server = StatusServer(build_app(state, ValidatorMetrics()), port=0)
        base = f"http://127.0.0.1:{server.start()}"
        try:
            print(f"page: {len(page_html()) / 1024:.1f} KiB (self-contained)")
            for path in ("/scores", "/status", "/history?competition=tiny", "/pairs?competition=tiny", "/rounds?limit=20"):
                fetch(base + path)  # warm
                size, seconds = min(fetch(base + path) for _ in range(3))
                print(f"{path:32s} {size / 1024:9.1f} KiB  {seconds * 1000:8.1f} ms")
            chromium = find_chromium()
            if chromium is None:
                print("render: unmeasured (no Chromium found)")
                return
            dom = render_dom(chromium, base + "/", Path(tmp) / "profile-check")
            rows = len(re.findall(r"<tr data-hotkey=", dom))
            print(f"rendered rows in the models table: {rows}")
            runs = [real_time_render(chromium, base + "/", Path(tmp) / f"profile{i}") for i in range(3)]
            print("Chromium, real time, 3 runs (navigation start -> page drawn | one refresh: fetch + parse + draw):")
            for total, refresh in runs:
                print(f"  {total:7.0f} ms | {refresh:7.0f} ms")
        finally:
            server.stop()
            state.close()


if __name__ == "__main__":
    main()
