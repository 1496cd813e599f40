#!/usr/bin/env python
"""The state database over simulated weeks of mainnet-shaped rounds: its size and `/scores` latency.

Each simulated round does what the daemon's round does to the database, through the same
`ValidatorState` methods: start, record the plan, keep each model's per-document losses as it is
scored (16 models x 2,400 documents), record the round's data, commit results + 120 verdicts + EMA
+ registrations, finish, apply retention. Hotkeys re-commit now and then. At each checkpoint the
script prints the database size (file + WAL) and the latency of `GET /scores` from the real status
API (aiohttp server, read-only connection), median and max of 20 requests. The last line printed
is one JSON object.

    .venv/bin/python scripts/bench_state.py [--days 30] [--rounds-per-day 72] [--keep-loss-rounds 48]
        [--keep-summary-rounds 1440] [--models 16] [--docs 2400]

`--keep-loss-rounds 0 --keep-summary-rounds 0` turns retention off (for comparison; use few days).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from subnet.eval.types import DocLosses  # noqa: E402
from subnet.validator import state as st  # noqa: E402
from subnet.validator.api import StatusServer, build_app  # noqa: E402
from subnet.validator.metrics import ValidatorMetrics  # noqa: E402
from subnet.validator.state import ResultRow, ScoredModel, ValidatorState, VerdictRow  # noqa: E402


def losses_blobs(n_models: int, n_docs: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for m in range(n_models):
        tokens = rng.integers(20, 1024, n_docs)
        nll = tokens * rng.normal(2.17 + 0.05 * m, 0.39, n_docs).clip(0.5)
        out.append(DocLosses(nll, tokens, tokens * 4, np.zeros(n_docs, np.int8)).to_bytes())
    return out


def simulate_round(state: ValidatorState, r: int, hotkeys: list[str], model_ids: dict[str, int],
                   blobs: list[bytes], n_docs: int, keep_loss: int, keep_summary: int) -> None:
    block = 1_000_000 + 100 * r
    rid = state.start_round(block, f"0x{r:064x}")
    state.record_plan(rid, {"b3": [(hk, model_ids[hk]) for hk in hotkeys]})
    for i, hk in enumerate(hotkeys):
        state.record_scored(rid, ScoredModel("b3", hk, model_ids[hk], seconds=30.0, tokens_per_s=9e4,
                                             losses=blobs[(i + r) % len(blobs)]))
    state.record_round_data(rid, "b3", f"0x{r:064x}", [f"CC-MAIN-2024-10/{r * 31 + p}" for p in range(24)],
                            f"digest{r}", n_docs)
    results = [ResultRow("b3", hk, i, model_ids[hk], 2.2 + 0.01 * i, 2.19, 2.21, n_docs, 9e4, 30.0,
                         win_rate=i / len(hotkeys), wins=i, losses=blobs[(i + r) % len(blobs)])
               for i, hk in enumerate(hotkeys)]
    verdicts = [VerdictRow("b3", a, b, 0.002, -0.001, -0.002, 0.0, True)
                for i, a in enumerate(hotkeys) for b in hotkeys[i + 1:]]
    ema = {"b3": {hk: 1.0 / len(hotkeys) for hk in hotkeys}}
    state.complete_scoring(rid, results, verdicts, ema, list(model_ids.values()),
                           registered={hk: i for i, hk in enumerate(hotkeys)},
                           n_due=len(hotkeys), n_evaluated=len(hotkeys))
    state.finish_round(rid, st.ROUND_DONE)
    state.prune(keep_loss, keep_summary)


def db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def scores_latency(port: int, n: int = 20) -> tuple[float, float, int]:
    import aiohttp

    async def run():
        times, rows = [], 0
        async with aiohttp.ClientSession() as http:
            for _ in range(n):
                t = time.perf_counter()
                async with http.get(f"http://127.0.0.1:{port}/scores") as r:
                    rows = len((await r.json())["scores"])
                times.append(time.perf_counter() - t)
        return times, rows

    times, rows = asyncio.run(run())
    return statistics.median(times) * 1000, max(times) * 1000, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--rounds-per-day", type=int, default=72)
    ap.add_argument("--models", type=int, default=16)
    ap.add_argument("--docs", type=int, default=2400)
    ap.add_argument("--keep-loss-rounds", type=int, default=48)
    ap.add_argument("--keep-summary-rounds", type=int, default=1440)
    ap.add_argument("--checkpoints", type=int, default=3)
    args = ap.parse_args()

    total = int(args.days * args.rounds_per_day)
    marks = {int(total * (i + 1) / args.checkpoints) for i in range(args.checkpoints)}
    blobs = losses_blobs(args.models, args.docs)
    with tempfile.TemporaryDirectory(prefix="bench-state-") as tmp:
        path = Path(tmp) / "state.sqlite"
        state = ValidatorState(path)
        hotkeys = [f"5Hotkey{i:02d}" + "x" * 40 for i in range(args.models)]
        model_ids = {hk: state.upsert_commitment(hk, i, f"ns:m{i}:{'0' * 40}:{'h' * 44}:b3", 10, "b3").id
                     for i, hk in enumerate(hotkeys)}
        server = StatusServer(build_app(state, ValidatorMetrics()), "127.0.0.1", 0)
        port = server.start()
        checkpoints = []
        started = time.perf_counter()
        try:
            for r in range(1, total + 1):
                if r % 50 == 0:  # a miner re-commits now and then: the models table grows slowly
                    hk = hotkeys[r % len(hotkeys)]
                    model_ids[hk] = state.upsert_commitment(hk, r % len(hotkeys), f"ns:m{r}:{'1' * 40}:{'h' * 44}:b3",
                                                            10 + r, "b3").id
                simulate_round(state, r, hotkeys, model_ids, blobs, args.docs, args.keep_loss_rounds,
                               args.keep_summary_rounds)
                if r in marks:
                    median_ms, max_ms, rows = scores_latency(port)
                    point = {"day": round(r / args.rounds_per_day, 1), "rounds": r,
                             "db_mb": round(db_bytes(path) / 1e6, 1), "scores_median_ms": round(median_ms, 1),
                             "scores_max_ms": round(max_ms, 1), "score_rows": rows,
                             "elapsed_s": round(time.perf_counter() - started, 1)}
                    checkpoints.append(point)
                    print(f"day {point['day']:>5}: {r:>5} rounds, database {point['db_mb']:>7.1f} MB, "
                          f"/scores median {median_ms:6.1f} ms (max {max_ms:6.1f} ms) over {rows} rows",
                          flush=True)
        finally:
            server.stop()
            state.close()
    print(json.dumps({"days": args.days, "rounds_per_day": args.rounds_per_day, "models": args.models,
                      "docs": args.docs, "keep_loss_rounds": args.keep_loss_rounds,
                      "keep_summary_rounds": args.keep_summary_rounds, "checkpoints": checkpoints}))


if __name__ == "__main__":
    main()
