"""FineWeb from parquet files, read a row group at a time: a local directory, or the Hub (hub_parquet.py).

Pages are chosen like the datasets-server pages: the k-th page is a pure function of (seed, k)
and the file listing: a file weighted by its bytes, a row group weighted by its rows (from the
file's footer), then a page-aligned run of rows inside it. Only the footer and the chosen row
group's `text` column are read, never a whole multi-GB file. Footers are cached by path: at a
fixed revision a file never changes. A page that cannot be read is recorded, never silently
replaced (unless `extra_pages` allows it, and then the replacement is recorded too), and an
overall deadline bounds the round whatever the storage does.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from subnet.data.sampling import dedupe_documents, documents_digest, is_blank, page_rng
from subnet.data.types import Document, RoundData

log = logging.getLogger(__name__)

FOOTER_GUESS = 64 * 1024  # first read at a file's end: the whole footer of most files
MAX_FOOTER_BYTES = 64 * 1024**2
MAX_CHUNK_BYTES = 512 * 1024**2  # a row group's text column; FineWeb's are a few MB


@dataclass(frozen=True)
class ParquetFileInfo:
    path: str  # relative to the source's root: part of every page id
    size: int  # bytes
    version: str = ""  # changes whenever the content does (blob id, mtime): part of the footer cache key


@dataclass(frozen=True)
class RowGroupPage:
    file: ParquetFileInfo
    row_group: int
    offset: int  # within the row group
    length: int

    @property
    def id(self) -> str:
        return f"{self.file.path}/{self.row_group}/{self.offset}"


def choose_file(seed: str, k: int, files: Sequence[ParquetFileInfo]) -> ParquetFileInfo:
    rng = page_rng(seed, k, "file")
    ordered = sorted(files, key=lambda f: f.path)  # the listing's order must not matter
    return rng.choices(ordered, weights=[f.size for f in ordered])[0]


def choose_row_group_page(seed: str, k: int, file: ParquetFileInfo, row_groups: Sequence[int],
                          page_size: int) -> RowGroupPage:
    """The k-th page inside its file: a row group weighted by rows, then a page-aligned offset."""
    rng = page_rng(seed, k, "row-group")
    if not any(row_groups):
        raise ValueError(f"{file.path} has no rows")
    group = rng.choices(range(len(row_groups)), weights=row_groups)[0]
    n_pages = max(1, row_groups[group] // page_size)
    return RowGroupPage(file, group, rng.randrange(n_pages) * page_size, page_size)


class _Prefetched(io.RawIOBase):
    """A read-only file of `size` bytes of which only some ranges are known; reading elsewhere is an error."""

    def __init__(self, file: ParquetFileInfo, ranges: dict[int, bytes]):
        self.file, self.ranges, self.pos = file, ranges, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.file.size + offset}[whence]
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = self.file.size if n is None or n < 0 else min(self.pos + n, self.file.size)
        for start, data in self.ranges.items():
            if start <= self.pos and end <= start + len(data):
                out = data[self.pos - start:end - start]
                self.pos = end
                return out
        raise ValueError(f"{self.file.path}: read of [{self.pos}, {end}) outside the fetched ranges")


class ParquetPages:
    """Seeded row-group pages over some file storage; subclasses say how to list and open files."""

    name = "parquet"

    def __init__(self, workers: int = 8, deadline_s: float = 600.0, extra_pages: int = 0):
        if workers < 1 or deadline_s <= 0 or extra_pages < 0:
            raise ValueError(f"bad parquet source settings: workers={workers}, deadline_s={deadline_s}, "
                             f"extra_pages={extra_pages}")
        self.workers, self.deadline_s, self.extra_pages = workers, deadline_s, extra_pages
        self._footers: dict[tuple[str, str], pq.FileMetaData] = {}

    # ---- what a storage provides
    def snapshot(self) -> tuple[str, list[ParquetFileInfo]]:
        """(revision, files) to choose this round's pages from."""
        raise NotImplementedError

    def open(self, file: ParquetFileInfo) -> IO[bytes]:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    # ---- pages
    def read_range(self, file: ParquetFileInfo, start: int, end: int) -> bytes:
        """Bytes [start, end) of a file: one range request on the Hub."""
        with self.open(file) as f:
            f.seek(start)
            data = f.read(end - start)
        if len(data) != end - start:
            raise ValueError(f"{file.path}: asked for {end - start} bytes at {start}, got {len(data)}")
        return data

    def footer(self, file: ParquetFileInfo) -> pq.FileMetaData:
        """The file's metadata, from its last bytes (cached: at one version a file never changes)."""
        meta = self._footers.get((file.path, file.version))
        if meta is None:
            tail = self.read_range(file, max(0, file.size - FOOTER_GUESS), file.size)
            if len(tail) < 12 or tail[-4:] != b"PAR1":
                raise ValueError(f"{file.path} does not end like a parquet file")
            length = int.from_bytes(tail[-8:-4], "little") + 8
            if length > min(file.size, MAX_FOOTER_BYTES):
                raise ValueError(f"{file.path}: footer of {length} bytes (file {file.size}, limit {MAX_FOOTER_BYTES})")
            if length > len(tail):
                tail = self.read_range(file, file.size - length, file.size)
            meta = pq.read_metadata(pa.BufferReader(tail))
            self._footers[(file.path, file.version)] = meta
        return meta

    def choose_page(self, seed: str, k: int, files: Sequence[ParquetFileInfo], page_size: int) -> RowGroupPage:
        file = choose_file(seed, k, files)
        meta = self.footer(file)
        groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        return choose_row_group_page(seed, k, file, groups, page_size)

    def read_page(self, page: RowGroupPage) -> tuple[list[Document], int]:
        """The page's non-blank texts, and how many blank ones were left out.

        The row group's `text` column chunk is fetched first (plain Python I/O), then decoded by
        pyarrow from memory: a thread is never blocked on the network inside pyarrow, where an
        abandoned read would abort the interpreter at exit.
        """
        meta = self.footer(page.file)
        names = [meta.schema.column(i).path for i in range(meta.num_columns)]
        if "text" not in names:
            raise ValueError(f"{page.file.path} has no 'text' column")
        chunk = meta.row_group(page.row_group).column(names.index("text"))
        start = chunk.data_page_offset
        if chunk.has_dictionary_page and 0 < (chunk.dictionary_page_offset or 0) < start:
            start = chunk.dictionary_page_offset
        if not (0 <= start and 0 < chunk.total_compressed_size <= MAX_CHUNK_BYTES
                and start + chunk.total_compressed_size <= page.file.size):
            raise ValueError(f"{page.file.path}: row group {page.row_group} text chunk at {start}, "
                             f"{chunk.total_compressed_size} bytes, is out of bounds")
        data = self.read_range(page.file, start, start + chunk.total_compressed_size)
        in_memory = _Prefetched(page.file, {start: data})
        table = pq.ParquetFile(in_memory, metadata=meta).read_row_group(page.row_group, columns=["text"])
        texts = table.column("text").slice(page.offset, page.length).to_pylist()
        docs = [Document(f"{page.id}/{i}", t) for i, t in enumerate(texts) if isinstance(t, str) and not is_blank(t)]
        return docs, len(texts) - len(docs)

    def _worker(self, todo: queue.Queue, results: queue.Queue, seed: str, files, page_size: int) -> None:
        while (k := todo.get()) is not None:
            try:
                page = self.choose_page(seed, k, files, page_size)  # a footer read: may fail like a page read
                results.put((k, (page, self.read_page(page))))
            except Exception as e:  # noqa: BLE001 - a corrupt file or a storage error costs one page
                results.put((k, e))

    def fetch_round(self, seed: str, pages: int, page_size: int, max_documents: int) -> RoundData:
        if pages <= 0 or page_size <= 0 or max_documents <= 0:
            raise ValueError(f"pages, page_size and max_documents must be positive, got {pages}, {page_size}, {max_documents}")
        deadline = time.monotonic() + self.deadline_s
        try:
            revision, files = self.snapshot()
        except Exception as e:  # noqa: BLE001 - storage errors of every kind fail the round, not the process
            log.warning("%s: listing failed: %s", self.describe(), e)
            return RoundData(seed=seed, page_ids=(), documents=(), failed_pages=(f"listing: {type(e).__name__}: {e}",),
                             digest=documents_digest([]), source=self.describe())
        fetched: dict[int, tuple[RowGroupPage, list[Document], int]] = {}
        failed: dict[int, str] = {}
        budget = pages + self.extra_pages
        todo: queue.Queue = queue.Queue()
        results: queue.Queue = queue.Queue()
        for k in range(pages):
            todo.put(k)
        # Daemon threads, not asyncio (pyarrow and huggingface_hub read synchronously) and not an
        # executor (whose threads the interpreter joins at exit): a read the storage holds open past
        # the deadline is abandoned and can hold up neither the round nor the process.
        for _ in range(min(self.workers, pages)):
            threading.Thread(target=self._worker, args=(todo, results, seed, files, page_size),
                             name="parquet-page", daemon=True).start()
        next_k, outstanding = pages, pages
        while outstanding:
            try:
                k, outcome = results.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            outstanding -= 1
            if isinstance(outcome, Exception):
                log.warning("%s: page k=%d unreadable: %s", self.describe(), k, outcome)
                failed[k] = f"k={k}: {type(outcome).__name__}: {str(outcome)[:300]}"
                if next_k < budget and time.monotonic() < deadline:
                    todo.put(next_k)
                    next_k, outstanding = next_k + 1, outstanding + 1
            else:
                page, (docs, blank) = outcome
                fetched[k] = (page, docs, blank)
        for _ in range(self.workers):
            todo.put(None)  # idle workers end; busy ones end after their read
        for k in range(next_k):
            if k not in fetched and k not in failed:
                failed[k] = f"k={k}: deadline of {self.deadline_s:g}s passed"
        order = sorted(fetched)
        docs = dedupe_documents([d for k in order for d in fetched[k][1]])[:max_documents]
        blank = sum(fetched[k][2] for k in order)
        dumps: dict[str, int] = {}
        for f in files:
            dump = f.path.rsplit("/", 1)[0] if "/" in f.path else "."
            dumps[dump] = dumps.get(dump, 0) + f.size
        return RoundData(
            seed=seed, page_ids=tuple(fetched[k][0].id for k in order), documents=tuple(docs),
            failed_pages=tuple(failed[k] for k in sorted(failed)), digest=documents_digest(docs),
            source=self.describe(), revision=revision, revisions=(revision,), configs=tuple(sorted(dumps.items())),
            replaced_pages=tuple(f"{fetched[k][0].id} (k={k})" for k in order if k >= pages),
            dropped=(("blank", blank),) if blank else (),
        )


class ParquetSource(ParquetPages):
    """A DocumentSource over a local directory of FineWeb parquet files (column `text`), e.g. a download."""

    name = "parquet-dir"

    def __init__(self, directory: str | Path, extra_pages: int = 0, workers: int = 2, deadline_s: float = 600.0):
        super().__init__(workers=workers, deadline_s=deadline_s, extra_pages=extra_pages)
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ValueError(f"parquet source directory {self.directory} does not exist")

    def __repr__(self) -> str:
        return f"ParquetSource({str(self.directory)!r})"

    def describe(self) -> str:
        return f"parquet-dir:{self.directory}"

    def snapshot(self) -> tuple[str, list[ParquetFileInfo]]:
        files = []
        for p in sorted(self.directory.rglob("*.parquet")):
            stat = p.stat()
            files.append(ParquetFileInfo(p.relative_to(self.directory).as_posix(), stat.st_size, str(stat.st_mtime_ns)))
        files = [f for f in files if f.size > 0]
        if not files:
            raise ValueError(f"no non-empty *.parquet files under {self.directory}")
        return "", files

    def open(self, file: ParquetFileInfo) -> IO[bytes]:
        return open(self.directory / file.path, "rb")
