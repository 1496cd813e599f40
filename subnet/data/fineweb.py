"""FineWeb pages from the Hugging Face datasets-server API, chosen from a block hash.

Every validator must score the same documents, so the k-th page is a pure function of
(seed, k): a dump chosen weighted by its row count, then a page-aligned offset. The server
returns 5xx often, so a page is retried with exponential backoff; a page that still fails is
recorded in `failed_pages` and replaced by the next page of the same seeded sequence (k+1,
k+2, ...), so validators that saw the same failures still agree, and a bad page never sinks
a round.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import aiohttp

from subnet.data.sampling import dedupe_documents, documents_digest, page_rng
from subnet.data.types import Document, RoundData

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://datasets-server.huggingface.co"
DEFAULT_DATASET = "HuggingFaceFW/fineweb"
MAX_BACKOFF_S = 30.0
T = TypeVar("T")


class FetchError(Exception):
    """One request failed; `retryable` says whether asking again may help (5xx, timeouts, bad JSON)."""

    def __init__(self, reason: str, retryable: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class Page:
    config: str
    offset: int
    length: int

    @property
    def id(self) -> str:
        return f"{self.config}/{self.offset}"


def choose_page(seed: str, k: int, sizes: dict[str, int], page_size: int) -> Page:
    """The k-th page for a seed: a dump weighted by rows, then an offset that is a multiple of page_size."""
    if not sizes:
        raise ValueError("no dataset configs to choose pages from")
    rng = page_rng(seed, k)
    names = sorted(sizes)  # the server's listing order must not matter
    config = rng.choices(names, weights=[sizes[n] for n in names])[0]
    n_pages = max(1, sizes[config] // page_size)
    return Page(config, rng.randrange(n_pages) * page_size, page_size)


def parse_sizes(payload: Any) -> dict[str, int]:
    """Row counts of the train split per config from a /size response, without the `default` config."""
    try:
        splits = payload["size"]["splits"]
        sizes = {
            s["config"]: int(s["num_rows"])
            for s in splits
            if s.get("split") == "train" and s.get("config") != "default" and int(s["num_rows"]) > 0
        }
    except (KeyError, TypeError, ValueError) as e:
        raise FetchError(f"malformed /size response: {type(e).__name__}: {e}") from None
    if not sizes:
        raise FetchError("/size lists no non-empty train split outside the default config")
    return sizes


def parse_rows(payload: Any, page: Page) -> list[Document]:
    """Documents of a /rows response, ids "<page id>/<index in page>"; rows without text are skipped."""
    rows = payload.get("rows") if isinstance(payload, dict) else None
    if not isinstance(rows, list):
        raise FetchError("malformed /rows response: no 'rows' list")
    docs = []
    for i, item in enumerate(rows):
        text = item.get("row", {}).get("text") if isinstance(item, dict) else None
        if isinstance(text, str):
            docs.append(Document(f"{page.id}/{i}", text))
    return docs


@dataclass
class _Http:
    session: aiohttp.ClientSession
    slots: asyncio.Semaphore  # requests in flight, at most `connections`


class FineWebSource:
    """A DocumentSource over the datasets-server API (aiohttp, bounded connections and retries)."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, dataset: str = DEFAULT_DATASET, page_size: int = 100,
                 connections: int = 8, timeout_s: float = 30.0, retries: int = 5, backoff_s: float = 1.0,
                 extra_pages: int | None = None):
        if connections < 1 or retries < 0 or timeout_s <= 0 or not (0 < page_size <= 100):
            raise ValueError(f"bad FineWebSource settings: connections={connections}, retries={retries}, "
                             f"timeout_s={timeout_s}, page_size={page_size} (1..100)")
        self.endpoint = endpoint.rstrip("/")
        self.dataset = dataset
        self.page_size = page_size
        self.connections = connections
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.extra_pages = extra_pages  # replacement pages allowed per round; None = as many as requested
        self._sizes: dict[str, int] | None = None

    def __repr__(self) -> str:
        return f"FineWebSource(endpoint={self.endpoint!r}, dataset={self.dataset!r})"

    # ------------------------------------------------------------------ sync entry point
    def fetch_round(self, seed: str, pages: int, page_size: int | None = None,
                    max_documents: int = 10**9) -> RoundData:
        """Run the async fetch on a fresh event loop (in a helper thread if this one already has a loop)."""
        coroutine = self.fetch_round_async(seed, pages, page_size, max_documents)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coroutine)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, coroutine).result()

    # ------------------------------------------------------------------ async core
    async def fetch_round_async(self, seed: str, pages: int, page_size: int | None = None,
                                max_documents: int = 10**9) -> RoundData:
        if pages <= 0 or max_documents <= 0:
            raise ValueError(f"pages and max_documents must be positive, got {pages} and {max_documents}")
        page_size = page_size or self.page_size
        if not (0 < page_size <= 100):
            raise ValueError(f"page_size must be in 1..100 (the API's limit), got {page_size}")
        # Concurrency is bounded by a semaphore held only while a request is in flight, so the
        # per-request timeout never counts time spent queued behind other pages or backing off.
        connector = aiohttp.TCPConnector(limit=self.connections)
        async with aiohttp.ClientSession(connector=connector) as session:
            http = _Http(session, asyncio.Semaphore(self.connections))
            try:
                sizes = await self._get_sizes(http)
            except FetchError as e:
                log.warning("datasets-server /size failed: %s", e.reason)
                return RoundData(seed=seed, page_ids=(), documents=(), failed_pages=(f"size: {e.reason}",),
                                 digest=documents_digest([]))
            fetched, failed = await self._fetch_pages(http, seed, pages, page_size, sizes)
        docs = dedupe_documents([d for _, _, page_docs in fetched for d in page_docs])[:max_documents]
        return RoundData(
            seed=seed,
            page_ids=tuple(page.id for _, page, _ in fetched),
            documents=tuple(docs),
            failed_pages=tuple(f"{page.id}: {reason}" for _, page, reason in failed),
            digest=documents_digest(docs),
        )

    async def _fetch_pages(self, http, seed, pages, page_size, sizes):
        """Fetch pages k = 0, 1, ... until `pages` succeed; each failure launches the next k (bounded)."""
        budget = pages + (pages if self.extra_pages is None else self.extra_pages)
        fetched: list[tuple[int, Page, list[Document]]] = []
        failed: list[tuple[int, Page, str]] = []
        next_k = 0
        running: dict[asyncio.Task, tuple[int, Page]] = {}

        def launch() -> None:
            nonlocal next_k
            page = choose_page(seed, next_k, sizes, page_size)
            running[asyncio.create_task(self._fetch_page(http, page))] = (next_k, page)
            next_k += 1

        for _ in range(pages):
            launch()
        while running:
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                k, page = running.pop(task)
                try:
                    fetched.append((k, page, task.result()))
                except FetchError as e:
                    failed.append((k, page, e.reason))
                    log.warning("page %s (k=%d) given up: %s", page.id, k, e.reason)
                    if next_k < budget:
                        launch()
        fetched.sort(key=lambda item: item[0])
        failed.sort(key=lambda item: item[0])
        return fetched, failed

    async def _fetch_page(self, http, page: Page) -> list[Document]:
        params = {"dataset": self.dataset, "config": page.config, "split": "train",
                  "offset": str(page.offset), "length": str(page.length)}
        return await self._get_json(http, "/rows", params, lambda payload: parse_rows(payload, page))

    async def _get_sizes(self, http) -> dict[str, int]:
        if self._sizes is None:
            self._sizes = await self._get_json(http, "/size", {"dataset": self.dataset}, parse_sizes)
        return self._sizes

    async def _get_json(self, http, path: str, params: dict[str, str], parse: Callable[[Any], T]) -> T:
        """GET and parse with bounded retries and exponential backoff; a malformed body is retried too."""
        last = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(min(self.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S))
            try:
                return parse(await self._get_once(http, path, params))
            except FetchError as e:
                last = e.reason
                if not e.retryable:
                    break
                log.debug("%s %s attempt %d failed: %s", path, params, attempt + 1, e.reason)
        raise FetchError(f"{last} (after {attempt + 1} attempt(s))", retryable=False)

    async def _get_once(self, http: "_Http", path: str, params: dict[str, str]) -> Any:
        try:
            async with http.slots:
                async with http.session.get(self.endpoint + path, params=params,
                                       timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as response:
                    body = await response.read()
                    status = response.status
        except asyncio.TimeoutError:
            raise FetchError(f"timeout after {self.timeout_s}s") from None
        except aiohttp.ClientError as e:
            raise FetchError(f"connection error: {type(e).__name__}: {e}") from None
        if status >= 500 or status == 429:
            raise FetchError(f"HTTP {status}: {body[:200]!r}")
        if status >= 400:
            raise FetchError(f"HTTP {status}: {body[:200]!r}", retryable=False)
        try:
            return json.loads(body)
        except ValueError as e:
            raise FetchError(f"malformed JSON: {e}") from None
