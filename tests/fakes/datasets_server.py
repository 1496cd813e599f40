"""A local stand-in for the Hugging Face datasets-server (/size and /rows), with injectable faults.

Rows are generated deterministically from (config, row index), so two clients that fetch the
same page get the same bytes. Like the real server, /size lists the `default` config and the
`sample-*` subsets beside the dumps, reports `pending`, `failed` and `partial`, and every answer
carries the dataset revision in `X-Revision`; `add_dump` publishes a new dump as a new revision.
Faults are scripted per page as a list of actions consumed one per request, or for every page:

    "500", "slow" (answer after slow_s), "malformed" (cut JSON), "429" (Retry-After: retry_after),
    "drip" (a valid answer sent one byte every drip_interval_s), "row-null", "row-list",
    "truncated" (the first row's text marked in truncated_cells), "row-idx" (wrong row_idx).
/size faults add "split-not-object" and "num-rows-infinity".

    with running_server(configs={"CC-MAIN-2024-10": 5000}, latency_s=0.05) as server:
        FineWebSource(endpoint=server.url, ...)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

from aiohttp import web

from subnet.data.synthetic import generate_text

DATASET = "HuggingFaceFW/fineweb"
SAMPLE_CONFIGS = ("sample-10BT", "sample-100BT", "sample-350BT")


@lru_cache(maxsize=100_000)
def _row_text(config: str, index: int) -> str:
    """Cached: generating text costs CPU that would otherwise compete with the client being measured."""
    return generate_text(f"fake-fineweb/{config}/{index}")


def _revision_of(configs: dict[str, int]) -> str:
    return hashlib.sha1(json.dumps(sorted(configs.items())).encode()).hexdigest()


@dataclass
class FakeDatasetsServer:
    configs: dict[str, int]
    dataset: str = DATASET
    latency_s: float = 0.0  # added to every request, like a real round trip
    slow_s: float = 5.0  # how long a "slow" response takes (past the client's timeout)
    retry_after: str = "1"  # the Retry-After header of a "429"
    drip_interval_s: float = 0.2  # a "drip" answer sends one byte this often
    page_faults: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    all_page_faults: list[str] = field(default_factory=list)  # each page's first requests, unless scripted
    size_faults: list[str] = field(default_factory=list)
    empty_pages: set[tuple[str, int]] = field(default_factory=set)
    blank_rows: set[tuple[str, int]] = field(default_factory=set)  # (config, row index) whose text is "  \n"
    pending: list[str] = field(default_factory=list)  # configs whose size job is still pending
    failed: list[str] = field(default_factory=list)  # configs whose size job failed
    partial: bool = False
    before_page: dict[tuple[str, int], Callable[["FakeDatasetsServer"], None]] = field(default_factory=dict)
    requests: Counter = field(default_factory=Counter)  # (config, offset) -> requests seen; "size" too
    revision: str = ""
    url: str = ""

    def __post_init__(self) -> None:
        self.revision = self.revision or _revision_of(self.configs)

    def row_text(self, config: str, index: int) -> str:
        return "  \n" if (config, index) in self.blank_rows else _row_text(config, index)

    def add_dump(self, config: str, rows: int) -> None:
        """Publish a new dump: a new dataset revision, as when FineWeb gains a crawl."""
        self.configs[config] = rows
        self.revision = _revision_of(self.configs)

    def _next_fault(self, key) -> str | None:
        if key == "size":
            script = self.size_faults
        else:
            script = self.page_faults.setdefault(key, list(self.all_page_faults))
        return script.pop(0) if script else None

    def _json(self, data, status: int = 200, headers: dict | None = None) -> web.Response:
        return web.Response(text=json.dumps(data), status=status, content_type="application/json",
                            headers={"X-Revision": self.revision, **(headers or {})})

    async def _fault_response(self, fault: str | None) -> web.Response | None:
        if fault == "500":
            return self._json({"error": "injected server error"}, status=500)
        if fault == "429":
            return self._json({"error": "Too Many Requests"}, status=429, headers={"Retry-After": self.retry_after})
        if fault == "slow":
            await asyncio.sleep(self.slow_s)
        if fault == "malformed":
            return web.Response(text='{"rows": [', content_type="application/json",
                                headers={"X-Revision": self.revision})
        return None

    async def _drip(self, request: web.Request, body: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json", "X-Revision": self.revision,
                                               "Content-Length": str(len(body.encode()))})
        await response.prepare(request)
        for byte in body.encode():
            await response.write(bytes([byte]))
            await asyncio.sleep(self.drip_interval_s)
        return response

    def size_payload(self, fault: str | None = None) -> dict:
        total = sum(self.configs.values())
        listed = {**self.configs, **{name: max(1, total // (i + 10)) for i, name in enumerate(SAMPLE_CONFIGS)}}
        splits = [{"dataset": self.dataset, "config": c, "split": "train", "num_bytes_parquet_files": n * 1100,
                   "num_bytes_memory": n * 3000, "num_rows": n, "num_columns": 9, "estimated_num_rows": None}
                  for c, n in listed.items()]
        splits.append({"dataset": self.dataset, "config": "default", "split": "train", "num_rows": total})
        if fault == "split-not-object":
            splits[0] = "CC-MAIN-2013-20"
        if fault == "num-rows-infinity":
            splits[0]["num_rows"] = float("inf")  # json.dumps writes Infinity, as a broken server might
        jobs = lambda configs: [{"kind": "config-size", "dataset": self.dataset, "config": c, "split": None}
                                for c in configs]
        return {"size": {"dataset": {"dataset": self.dataset, "num_rows": total},
                         "configs": [{"dataset": self.dataset, "config": s["config"], "num_rows": s["num_rows"]}
                                     for s in splits if isinstance(s, dict)],
                         "splits": splits},
                "pending": jobs(self.pending), "failed": jobs(self.failed), "partial": self.partial}

    async def size(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.latency_s)
        self.requests["size"] += 1
        if request.query.get("dataset") != self.dataset:
            return self._json({"error": "The dataset does not exist."}, status=404)
        fault = self._next_fault("size")
        faulty = await self._fault_response(fault)
        if faulty is not None:
            return faulty
        return self._json(self.size_payload(fault))

    async def rows(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(self.latency_s)
        q = request.query
        config = q.get("config", "")
        try:
            offset, length = int(q.get("offset", "0")), int(q.get("length", "100"))
        except ValueError:
            return self._json({"error": "offset and length must be integers"}, status=422)
        self.requests[(config, offset)] += 1
        hook = self.before_page.pop((config, offset), None)
        if hook is not None:
            hook(self)
        if q.get("dataset") != self.dataset or config not in self.configs or q.get("split") != "train":
            return self._json({"error": "Not found."}, status=404)
        if not (0 <= offset and 0 < length <= 100):
            return self._json({"error": "Parameter 'length' must be between 1 and 100"}, status=422)
        fault = self._next_fault((config, offset))
        faulty = await self._fault_response(fault)
        if faulty is not None:
            return faulty
        total = self.configs[config]
        indices = [] if (config, offset) in self.empty_pages else range(offset, min(offset + length, total))
        rows = [{"row_idx": i, "row": {"text": self.row_text(config, i), "id": f"<urn:uuid:{config}-{i}>",
                                       "dump": config, "url": f"https://example.org/{i}"},
                 "truncated_cells": []} for i in indices]
        if rows and fault == "row-null":
            rows[0]["row"] = None
        if rows and fault == "row-list":
            rows[0]["row"] = [rows[0]["row"]["text"]]
        if rows and fault == "truncated":
            rows[0]["row"]["text"] = rows[0]["row"]["text"][:10]
            rows[0]["truncated_cells"] = ["text"]
        if rows and fault == "row-idx":
            rows[0]["row_idx"] = offset + 1
        body = json.dumps({"features": [], "rows": rows, "num_rows_total": total,
                           "num_rows_per_page": 100, "partial": False})
        if fault == "drip":
            return await self._drip(request, body)
        return web.Response(text=body, content_type="application/json", headers={"X-Revision": self.revision})

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
    runner = web.AppRunner(server.app(), access_log=None, shutdown_timeout=0.5)

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
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
