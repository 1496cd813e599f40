#!/usr/bin/env python
"""Per-round fetch time and bytes moved by both real FineWeb sources, then tokenization speed.

Both sources run against local fakes with the same per-request latency (default 50 ms): the
datasets-server stand-in (tests/fakes/datasets_server.py) and a Hub serving real parquet files
shaped like FineWeb's (tests/fakes/parquet_hub.py: its columns, 1,000-row groups). Each source
fetches the same number of rounds with fresh seeds; the first round of a fresh source pays for
listings and footers, so it is reported apart from the later ones. Bytes are what crossed the
socket (response bodies). The last line printed is one JSON object.

    .venv/bin/python scripts/bench_data.py [--rounds 3] [--pages 24] [--page-size 100] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from subnet.data.fineweb import FineWebSource  # noqa: E402
from subnet.data.hub_parquet import HubParquetSource  # noqa: E402
from subnet.data.sampling import tokenize_documents  # noqa: E402
from subnet.data.tokenizer import load_tokenizer  # noqa: E402
from tests.fakes.datasets_server import running_server  # noqa: E402
from tests.fakes.parquet_hub import fineweb_files, running_parquet_hub  # noqa: E402

CONFIGS = {"CC-MAIN-2013-20": 40_000, "CC-MAIN-2019-35": 80_000, "CC-MAIN-2024-10": 120_000}


def seeds(n: int) -> list[str]:
    return ["0x" + f"{i + 1:02x}" * 32 for i in range(n)]


def measure(fetch, byte_counter, rounds: int, pages: int, page_size: int) -> dict:
    out = []
    data = None
    for seed in seeds(rounds):
        before, start = byte_counter(), time.perf_counter()
        data = fetch(seed, pages, page_size)
        out.append({"seconds": time.perf_counter() - start, "bytes": byte_counter() - before,
                    "documents": len(data.documents), "complete": data.complete})
    later = out[1:] or out
    return {
        "first_round_s": round(out[0]["seconds"], 3), "first_round_bytes": out[0]["bytes"],
        "later_round_s": round(statistics.median(r["seconds"] for r in later), 3),
        "later_round_bytes": int(statistics.median(r["bytes"] for r in later)),
        "documents_per_round": out[-1]["documents"], "all_complete": all(r["complete"] for r in out),
    }, data


class _CountingRowsServer:
    """Counts /rows and /size body bytes by wrapping the fake's handlers."""

    def __init__(self, server):
        self.bytes = 0
        for name in ("rows", "size"):
            handler = getattr(server, name)

            async def counted(request, handler=handler):
                response = await handler(request)
                self.bytes += len(getattr(response, "body", b"") or b"")
                return response

            setattr(server, name, counted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pages", type=int, default=24)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--files-per-dump", type=int, default=3)
    parser.add_argument("--rows-per-file", type=int, default=8_000)
    parser.add_argument("--max-seq-len", type=int, default=4096)
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    result: dict = {"rounds": args.rounds, "pages": args.pages, "page_size": args.page_size,
                    "latency_ms": args.latency_ms}

    from tests.fakes.datasets_server import FakeDatasetsServer

    counter = None
    original_app = FakeDatasetsServer.app

    def counting_app(self):
        nonlocal counter
        counter = _CountingRowsServer(self)
        return original_app(self)

    FakeDatasetsServer.app = counting_app
    with running_server(configs=CONFIGS, latency_s=latency) as server:
        source = FineWebSource(endpoint=server.url, page_size=args.page_size, connections=8, timeout_s=30,
                               retries=3, backoff_s=0.05)
        for seed in seeds(args.rounds):  # untimed: fills the fake's row cache (the parquet files are built up front too)
            FineWebSource(endpoint=server.url).fetch_round(seed, args.pages, args.page_size)
        rows, data = measure(lambda s, p, n: source.fetch_round(s, p, n), lambda: counter.bytes,
                             args.rounds, args.pages, args.page_size)
    FakeDatasetsServer.app = original_app
    result["fineweb_rows"] = rows
    print(f"datasets-server: first round {rows['first_round_s']}s {rows['first_round_bytes'] / 1e6:.2f} MB, "
          f"later rounds {rows['later_round_s']}s {rows['later_round_bytes'] / 1e6:.2f} MB")

    start = time.perf_counter()
    files = fineweb_files({d: args.files_per_dump for d in CONFIGS}, args.rows_per_file)
    print(f"built {len(files)} parquet files, {sum(map(len, files.values())) / 1e6:.1f} MB, "
          f"in {time.perf_counter() - start:.0f}s")
    with running_parquet_hub(files, latency_s=latency) as hub:
        source = HubParquetSource(endpoint=hub.url, revision=hub.main, workers=8)
        parquet, _ = measure(lambda s, p, n: source.fetch_round(s, p, n, p * n), lambda: hub.bytes_served,
                             args.rounds, args.pages, args.page_size)
    result["fineweb_parquet"] = parquet
    print(f"hub parquet: first round {parquet['first_round_s']}s {parquet['first_round_bytes'] / 1e6:.2f} MB, "
          f"later rounds {parquet['later_round_s']}s {parquet['later_round_bytes'] / 1e6:.2f} MB")

    tokenizer = load_tokenizer("builtin:tiny")
    start = time.perf_counter()
    docs = tokenize_documents(data.documents, tokenizer, args.max_seq_len, data.digest)
    seconds = time.perf_counter() - start
    tokens = int(sum(len(t) for t in docs.tokens))
    result["tokenize"] = {"seconds": round(seconds, 3), "documents": len(docs), "tokens": tokens,
                          "tokens_per_s": round(tokens / seconds)}
    print(f"tokenize: {len(docs)} docs, {tokens} tokens in {seconds:.2f}s = {tokens / seconds:.0f} tokens/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
