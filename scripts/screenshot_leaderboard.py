"""Screenshots of the leaderboard page over a fixture state, served for real and drawn by headless Chromium.

Writes `healthy.png` (a working validator: identity, last and next weights, a copy beside the leader)
and `failing.png` (the same state read as unhealthy: the header and the banner name the reasons), each
at a desktop and a laptop width, to look at before a release:

    python scripts/screenshot_leaderboard.py OUT_DIR [--models 6] [--rounds 12]

With `--state DIR` (a validator's --state-dir, e.g. a devnet's `validator/`) it shoots that state instead,
read-only and without an age limit, as `subnet scores --serve` serves it (`state-*.png`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from subnet.validator.api import StatusServer, build_app  # noqa: E402
from subnet.validator.metrics import ValidatorMetrics  # noqa: E402
from subnet.validator.state import ValidatorState  # noqa: E402
from tests.leaderboard_fixtures import find_chromium, populate, screenshot  # noqa: E402

WINDOWS = {"wide": "1400,2400", "laptop": "1024,2600"}


def shoot(state: ValidatorState, out: Path, chromium: str, tmp: Path, name: str, max_age_s: float,
          block: int | None = None) -> list[Path]:
    server = StatusServer(build_app(state, ValidatorMetrics(), current_block=lambda: block,
                                    healthz_max_age_s=max_age_s), port=0)
    base = f"http://127.0.0.1:{server.start()}/"
    try:
        return [screenshot(chromium, base, tmp / f"profile-{name}-{label}", out / f"{name}-{label}.png",
                           window=window) for label, window in WINDOWS.items()]
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--models", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--state", type=Path, help="a validator's state directory to shoot instead of the fixture")
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        sys.exit("needs Chromium (Debian package 'chromium'), or CHROMIUM=/path/to/it")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.state is not None:
        from subnet.commands.scores import open_state

        with tempfile.TemporaryDirectory() as tmp, open_state(args.state) as state:
            for png in shoot(state, args.out, chromium, Path(tmp), "state", float("inf")):
                print(png)
        return
    with tempfile.TemporaryDirectory() as tmp:
        state = ValidatorState(Path(tmp) / "state.sqlite")
        try:
            populate(state, args.models, args.rounds)
            written = shoot(state, args.out, chromium, Path(tmp), "healthy", 3600.0, 3000)
            written += shoot(state, args.out, chromium, Path(tmp), "failing", 0.0, 3000)
        finally:
            state.close()
    for png in written:
        print(png)


if __name__ == "__main__":
    main()
