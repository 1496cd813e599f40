"""A local stand-in for the Hugging Face datasets-server (/size and /rows), with injectable faults.

Rows are generated deterministically from (config, row index), so two clients that fetch the
same page get the same bytes. Faults are scripted per page as a list of actions consumed one
per request ("500", "slow", "malformed", then normal service), or for every page at once.

    with running_server(configs={"CC-MAIN-2024-10": 5000}, latency_s=0.05) as server:
        FineWebSource(endpoint=server.url, ...)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from aiohttp import web

from subnet.data.synthetic import generate_text

DATASET = "HuggingFaceFW/fineweb"


@lru_cache(maxsize=100_000)
def _row_text(config: str, index: int) -> str:
    """Cached: generating text costs CPU that would otherwise compete with the client being measured."""
    return generate_text(f"fake-fineweb/{config}/{index}")


@dataclass
class FakeDatasetsServer:
    configs: dict[str, int]
    dataset: str = DATASET
    latency_s: float = 0.0  # added to every request, like a real round trip
    slow_s: float = 5.0  # how long a "slow" response takes (past the client's timeout)
    page_faults: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    all_page_faults: list[str] = field(default_factory=list)  # each page's first requests, unless scripted
    size_faults: list[str] = field(default_factory=list)
    empty_pages: set[tuple[str, int]] = field(default_factory=set)
    requests: Counter = field(default_factory=Counter)  # (config, offset) -> requests seen; "size" too
    url: str = ""

    def row_text(self, config: str, index: int) -> str:
        return _row_text(config, index)

    def _next_fault(self, key) -> str | None:
        if key == "size":
            script = self.size_faults
        else:
            script = self.page_faults.setdefault(key, list(self.all_page_faults))
        return script.pop(0) if script else None

    async def _fault_response(self, fault: str | None) -> web.Response | None:
        if fault == "500":
            return web.json_response({"error": "injected server error"}, status=500)
        if fault == "slow":
            await asyncio.sleep(self.slow_s)
        if fault == "malformed":
            return web.Response(text='{"rows": [', content_type="application/json")
        return None

    async def size(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.latency_s)
        self.requests["size"] += 1
        if request.query.get("dataset") != self.dataset:
            return web.json_response({"error": "The dataset does not exist."}, status=404)
        faulty = await self._fault_response(self._next_fault("size"))
        if faulty is not None:
            return faulty
        splits = [{"dataset": self.dataset, "config": c, "split": "train", "num_rows": n, "num_bytes_parquet_files": n}
                  for c, n in self.configs.items()]
        splits.append({"dataset": self.dataset, "config": "default", "split": "train",
                       "num_rows": sum(self.configs.values())})
        return web.json_response({"size": {"dataset": {"dataset": self.dataset, "num_rows": sum(self.configs.values())},
                                           "configs": [{"dataset": self.dataset, "config": s["config"],
                                                        "num_rows": s["num_rows"]} for s in splits],
                                           "splits": splits},
                                  "pending": [], "failed": [], "partial": False})

    async def rows(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.latency_s)
        q = request.query
        config = q.get("config", "")
        try:
            offset, length = int(q.get("offset", "0")), int(q.get("length", "100"))
        except ValueError:
            return web.json_response({"error": "offset and length must be integers"}, status=422)
        self.requests[(config, offset)] += 1
        if q.get("dataset") != self.dataset or config not in self.configs or q.get("split") != "train":
            return web.json_response({"error": "Not found."}, status=404)
        if not (0 <= offset and 0 < length <= 100):
            return web.json_response({"error": "Parameter 'length' must be between 1 and 100"}, status=422)
        faulty = await self._fault_response(self._next_fault((config, offset)))
        if faulty is not None:
            return faulty
        total = self.configs[config]
        indices = [] if (config, offset) in self.empty_pages else range(offset, min(offset + length, total))
        rows = [{"row_idx": i, "row": {"text": self.row_text(config, i), "id": f"<urn:uuid:{config}-{i}>",
                                       "dump": config, "url": f"https://example.org/{i}"},
                 "truncated_cells": []} for i in indices]
        return web.Response(text=json.dumps({"features": [], "rows": rows, "num_rows_total": total,
                                             "num_rows_per_page": 100, "partial": False}),
                            content_type="application/json")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/size", self.size)
        app.router.add_get("/rows", self.rows)
        return app


@contextlib.contextmanager
def running_server(**kwargs):
    """Serve a FakeDatasetsServer on 127.0.0.1 (ephemeral port) from a background thread."""
    server = FakeDatasetsServer(**kwargs)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner = web.AppRunner(server.app(), access_log=None)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        server.url = f"http://127.0.0.1:{port}"
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    started.wait(10)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
