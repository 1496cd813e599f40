"""FineWeb pages from the Hugging Face datasets-server API, chosen from a block hash.

Every validator must score the same documents, so the k-th page is a pure function of
(seed, k, dump sizes): a dump chosen weighted by its row count, then a page-aligned offset.
The dump sizes are read afresh every round (FineWeb gains dumps), and every answer's
`X-Revision` is kept, so a round records exactly what it was chosen from and a round that
straddled a dataset update says so. A page that fails all its retries is recorded, never
silently replaced: a round missing a page is not comparable with its peers, and the caller
refuses to judge it. An overall deadline bounds the whole fetch, whatever the server does
(drips bytes, answers 429 with a long Retry-After).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import email.utils
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import aiohttp

from subnet.data import fineweb_answers
from subnet.data.fineweb_answers import FetchError, SizeListing, parse_size
from subnet.data.sampling import dedupe_documents, documents_digest, page_rng
from subnet.data.types import Document, RoundData

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://datasets-server.huggingface.co"
DEFAULT_DATASET = "HuggingFaceFW/fineweb"
MAX_BACKOFF_S = 30.0
MAX_ANSWER_BYTES = 64 * 1024**2  # a /rows page of 100 FineWeb documents is well under 10 MB

__all__ = ["FetchError", "FineWebSource", "Page", "choose_page", "parse_retry_after", "parse_rows", "parse_sizes"]


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
    """Train rows per sampled dump of a /size answer (fineweb_answers.parse_size has the notes too)."""
    return parse_size(payload).configs


def parse_rows(payload: Any, page: Page) -> list[Document]:
    """The documents of a /rows answer for `page` (fineweb_answers.parse_rows also counts what it dropped)."""
    return fineweb_answers.parse_rows(payload, page.id, page.offset, page.length)[0]


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class _Answer:
    payload: Any
    revision: str  # the answer's X-Revision header ("" when absent)


@dataclass
class _Fetch:
    """One round's HTTP state: session, in-flight limit, deadline, rate-limit pause and revisions seen."""

    session: aiohttp.ClientSession
    slots: asyncio.Semaphore
    deadline: float  # loop time after which nothing more is asked
    not_before: float = 0.0  # loop time before which no request is sent (a 429's Retry-After)
    revisions: list[str] = field(default_factory=list)

    def remaining(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()


class FineWebSource:
    """A DocumentSource over the datasets-server API (aiohttp, bounded connections, retries and time)."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, dataset: str = DEFAULT_DATASET, page_size: int = 100,
                 connections: int = 8, timeout_s: float = 30.0, retries: int = 5, backoff_s: float = 1.0,
                 deadline_s: float = 600.0, extra_pages: int = 0):
        if connections < 1 or retries < 0 or timeout_s <= 0 or deadline_s <= 0 or not (0 < page_size <= 100):
            raise ValueError(f"bad FineWebSource settings: connections={connections}, retries={retries}, "
                             f"timeout_s={timeout_s}, deadline_s={deadline_s}, page_size={page_size} (1..100)")
        if extra_pages is None or extra_pages < 0:
            raise ValueError(f"extra_pages must be >= 0, got {extra_pages!r}")
        self.endpoint = endpoint.rstrip("/")
        self.dataset = dataset
        self.page_size = page_size
        self.connections = connections
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.deadline_s = deadline_s
        self.extra_pages = extra_pages  # replacement pages allowed per round (recorded); 0 = none

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
            http = _Fetch(session, asyncio.Semaphore(self.connections),
                          asyncio.get_running_loop().time() + self.deadline_s)
            data = await self._fetch_once(http, seed, pages, page_size, max_documents)
            if data.mixed_revisions and http.remaining() > 0:
                # The dataset changed while this round was fetched: choose again from the new listing,
                # so this validator agrees with those that fetch the round after the update.
                log.warning("dataset revision changed mid-round (%s); fetching the round again", data.revisions)
                again = _Fetch(session, http.slots, http.deadline, http.not_before)
                data = await self._fetch_once(again, seed, pages, page_size, max_documents)
                note = f"refetched after a revision change ({', '.join(sorted(set(http.revisions)))})"
                data = dataclasses.replace(data, notes=data.notes + (note,))
            return data

    async def _fetch_once(self, http: _Fetch, seed: str, pages: int, page_size: int, max_documents: int) -> RoundData:
        source = f"fineweb-rows:{self.dataset}"
        try:
            size = await self._get_json(http, "/size", {"dataset": self.dataset}, parse_size)
        except FetchError as e:
            log.warning("datasets-server /size failed: %s", e.reason)
            return RoundData(seed=seed, page_ids=(), documents=(), failed_pages=(f"size: {e.reason}",),
                             digest=documents_digest([]), source=source)
        listing: SizeListing = size.payload
        fetched, failed, replaced = await self._fetch_pages(http, seed, pages, page_size, listing.configs)
        dropped: dict[str, int] = {}
        for _, _, (_, counts) in fetched:
            for reason, n in counts.items():
                dropped[reason] = dropped.get(reason, 0) + n
        docs = dedupe_documents([d for _, _, (page_docs, _) in fetched for d in page_docs])[:max_documents]
        return RoundData(
            seed=seed,
            page_ids=tuple(page.id for _, page, _ in fetched),
            documents=tuple(docs),
            failed_pages=tuple(f"{page.id}: {reason}" for _, page, reason in failed),
            digest=documents_digest(docs),
            source=source,
            revision=size.revision,
            revisions=tuple(sorted(set(http.revisions))),
            configs=tuple(sorted(listing.configs.items())),
            replaced_pages=tuple(replaced),
            dropped=tuple(sorted(dropped.items())),
            notes=listing.notes,
        )

    async def _fetch_pages(self, http: _Fetch, seed: str, pages: int, page_size: int, sizes: dict[str, int]):
        """Fetch pages k = 0..pages-1; a failed page is replaced by the next k only if extra_pages allows.

        Returns the fetched pages, every failed one, and the replacement pages used (k >= pages).
        """
        budget = pages + self.extra_pages
        fetched: list[tuple[int, Page, tuple[list[Document], dict[str, int]]]] = []
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
                    if next_k < budget and http.remaining() > 0:
                        launch()
        fetched.sort(key=lambda item: item[0])
        failed.sort(key=lambda item: item[0])
        replaced = [f"{page.id} (k={k})" for k, page, _ in fetched if k >= pages]
        return fetched, failed, replaced

    async def _fetch_page(self, http: _Fetch, page: Page) -> tuple[list[Document], dict[str, int]]:
        params = {"dataset": self.dataset, "config": page.config, "split": "train",
                  "offset": str(page.offset), "length": str(page.length)}
        answer = await self._get_json(http, "/rows", params, lambda payload: fineweb_answers.parse_rows(
            payload, page.id, page.offset, page.length))
        return answer.payload

    async def _get_json(self, http: _Fetch, path: str, params: dict[str, str], parse: Callable[[Any], Any]) -> _Answer:
        """GET and parse with bounded retries, backoff and the round's deadline; a malformed body is retried too."""
        last = "no attempt"
        attempt = 0
        for attempt in range(self.retries + 1):
            wait = 0.0 if attempt == 0 else min(self.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
            wait = max(wait, http.not_before - asyncio.get_running_loop().time())
            if wait >= http.remaining():
                why = ("a 429's Retry-After reaches past the round's deadline"
                       if http.not_before > asyncio.get_running_loop().time() else "the round's deadline passed")
                last = f"{last}; {why}" if attempt else why
                break
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                body, revision = await self._get_once(http, path, params)
                answer = _Answer(parse(body), revision)
                http.revisions.append(revision)
                return answer
            except FetchError as e:
                last = e.reason
                if not e.retryable:
                    break
                log.debug("%s %s attempt %d failed: %s", path, params, attempt + 1, e.reason)
        raise FetchError(f"{last} (after {attempt + 1} attempt(s))", retryable=False)

    async def _get_once(self, http: _Fetch, path: str, params: dict[str, str]) -> tuple[Any, str]:
        timeout = min(self.timeout_s, http.remaining())
        if timeout <= 0:
            raise FetchError("deadline passed", retryable=False)
        try:
            async with http.slots:
                async with http.session.get(self.endpoint + path, params=params,
                                            timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                    status, headers = response.status, response.headers
                    body = bytearray()
                    async for chunk in response.content.iter_chunked(1 << 16):
                        body += chunk
                        if len(body) > MAX_ANSWER_BYTES:
                            raise FetchError(f"answer larger than {MAX_ANSWER_BYTES} bytes", retryable=False)
                    body = bytes(body)
        except asyncio.TimeoutError:
            raise FetchError(f"timeout after {timeout:.1f}s") from None
        except aiohttp.ClientError as e:
            raise FetchError(f"connection error: {type(e).__name__}: {e}") from None
        if status == 429:
            pause = parse_retry_after(headers.get("Retry-After"))
            if pause is not None:  # the server's limit holds for every request of this round, not just this one
                http.not_before = max(http.not_before, asyncio.get_running_loop().time() + pause)
            raise FetchError(f"HTTP 429 (Retry-After {headers.get('Retry-After')!r}): {body[:200]!r}")
        if status >= 500:
            raise FetchError(f"HTTP {status}: {body[:200]!r}")
        if status >= 400:
            raise FetchError(f"HTTP {status}: {body[:200]!r}", retryable=False)
        try:
            return json.loads(body), headers.get("X-Revision", "")
        except (ValueError, RecursionError) as e:
            raise FetchError(f"malformed JSON: {type(e).__name__}: {str(e)[:200]}") from None
