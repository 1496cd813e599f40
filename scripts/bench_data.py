#!/usr/bin/env python
"""Documents per second a round's data path delivers: fetch from a datasets-server, then tokenize.

The server is the local fake (tests/fakes/datasets_server.py) with a realistic per-request
latency, so the numbers measure the client's concurrency, not the internet. The same round is
fetched with 1 connection and with 8 (same seed, same pages), after one untimed warm-up that
fills the fake server's row cache. Tokenization uses the builtin tiny tokenizer. The last line
printed is one JSON object.

    .venv/bin/python scripts/bench_data.py [--pages 24] [--page-size 100] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from subnet.data.fineweb import FineWebSource  # noqa: E402
from subnet.data.sampling import tokenize_documents  # noqa: E402
from subnet.data.tokenizer import load_tokenizer  # noqa: E402
from tests.fakes.datasets_server import running_server  # noqa: E402

CONFIGS = {"CC-MAIN-2013-20": 40_000, "CC-MAIN-2019-35": 80_000, "CC-MAIN-2024-10": 120_000}
SEED = "0x" + "42" * 32


def timed_fetch(url: str, connections: int, pages: int, page_size: int):
    source = FineWebSource(endpoint=url, page_size=page_size, connections=connections, timeout_s=30,
                           retries=3, backoff_s=0.05)
    start = time.perf_counter()
    data = source.fetch_round(SEED, pages, page_size, pages * page_size)
    return data, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=24)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--max-seq-len", type=int, default=4096)
    args = parser.parse_args()

    result: dict = {"pages": args.pages, "page_size": args.page_size, "latency_ms": args.latency_ms}
    with running_server(configs=CONFIGS, latency_s=args.latency_ms / 1000) as server:
        timed_fetch(server.url, 8, args.pages, args.page_size)  # warm-up: fills the server's row cache
        for connections in (1, 8):
            data, seconds = timed_fetch(server.url, connections, args.pages, args.page_size)
            n = len(data.documents)
            result[f"fetch_{connections}_connections"] = {
                "seconds": round(seconds, 3), "documents": n, "docs_per_s": round(n / seconds, 1),
                "failed_pages": len(data.failed_pages)}
            print(f"fetch, {connections} connection(s): {n} docs in {seconds:.2f}s = {n / seconds:.0f} docs/s")

    tokenizer = load_tokenizer("builtin:tiny")
    start = time.perf_counter()
    docs = tokenize_documents(data.documents, tokenizer, args.max_seq_len, data.digest)
    seconds = time.perf_counter() - start
    tokens = int(sum(len(t) for t in docs.tokens))
    result["tokenize"] = {"seconds": round(seconds, 3), "documents": len(docs), "tokens": tokens,
                          "docs_per_s": round(len(docs) / seconds, 1), "tokens_per_s": round(tokens / seconds)}
    print(f"tokenize: {len(docs)} docs, {tokens} tokens in {seconds:.2f}s = {len(docs) / seconds:.0f} docs/s")
    for connections in (1, 8):
        fetch_s = result[f"fetch_{connections}_connections"]["seconds"]
        result[f"end_to_end_{connections}_connections_docs_per_s"] = round(len(docs) / (fetch_s + seconds), 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
