"""FineWeb from local parquet shards (e.g. a download of sample/10BT/*.parquet), with no network.

Pages are chosen like the datasets-server pages: the k-th page is a pure function of
(seed, k): a file weighted by its rows, a row group, then a page-aligned run of rows inside
it. Only the chosen row group is read (never a whole multi-GB file), and a page that cannot
be read is recorded and replaced by the next page of the same sequence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from subnet.data.sampling import dedupe_documents, documents_digest, page_rng
from subnet.data.types import Document, RoundData

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardInfo:
    path: Path
    name: str  # path relative to the source directory: part of every page id
    row_groups: tuple[int, ...]  # rows in each row group

    @property
    def num_rows(self) -> int:
        return sum(self.row_groups)


@dataclass(frozen=True)
class RowGroupPage:
    shard: ShardInfo
    row_group: int
    offset: int  # within the row group
    length: int

    @property
    def id(self) -> str:
        return f"{self.shard.name}/{self.row_group}/{self.offset}"


def scan_shards(directory: Path) -> list[ShardInfo]:
    """Every non-empty parquet file under `directory`, sorted by relative path (reads footers only)."""
    shards = []
    for path in sorted(directory.rglob("*.parquet")):
        meta = pq.ParquetFile(path).metadata
        groups = tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
        if sum(groups) > 0:
            shards.append(ShardInfo(path, path.relative_to(directory).as_posix(), groups))
    return shards


def choose_row_group_page(seed: str, k: int, shards: list[ShardInfo], page_size: int) -> RowGroupPage:
    rng = page_rng(seed, k)
    shard = rng.choices(shards, weights=[s.num_rows for s in shards])[0]
    nonempty = [i for i, n in enumerate(shard.row_groups) if n > 0]
    group = rng.choice(nonempty)
    n_pages = max(1, shard.row_groups[group] // page_size)
    return RowGroupPage(shard, group, rng.randrange(n_pages) * page_size, page_size)


def read_page(page: RowGroupPage) -> list[Document]:
    table = pq.ParquetFile(page.shard.path).read_row_group(page.row_group, columns=["text"])
    texts = table.column("text").slice(page.offset, page.length).to_pylist()
    return [Document(f"{page.id}/{i}", t) for i, t in enumerate(texts) if isinstance(t, str)]


class ParquetSource:
    """A DocumentSource over a directory of FineWeb parquet files (column `text`)."""

    def __init__(self, directory: str | Path, extra_pages: int | None = None):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ValueError(f"parquet source directory {self.directory} does not exist")
        self.extra_pages = extra_pages
        self._shards: list[ShardInfo] | None = None

    def __repr__(self) -> str:
        return f"ParquetSource({str(self.directory)!r})"

    def shards(self) -> list[ShardInfo]:
        if self._shards is None:
            shards = scan_shards(self.directory)
            if not shards:
                raise ValueError(f"no non-empty *.parquet files under {self.directory}")
            self._shards = shards
        return self._shards

    def fetch_round(self, seed: str, pages: int, page_size: int, max_documents: int) -> RoundData:
        if pages <= 0 or not (0 < page_size) or max_documents <= 0:
            raise ValueError(f"pages, page_size and max_documents must be positive, got {pages}, {page_size}, {max_documents}")
        shards = self.shards()
        budget = pages + (pages if self.extra_pages is None else self.extra_pages)
        fetched: list[tuple[RowGroupPage, list[Document]]] = []
        failed: list[str] = []
        for k in range(budget):
            if len(fetched) == pages:
                break
            page = choose_row_group_page(seed, k, shards, page_size)
            try:
                fetched.append((page, read_page(page)))
            except Exception as e:  # a corrupt shard or a missing column costs one page
                log.warning("parquet page %s unreadable: %s", page.id, e)
                failed.append(f"{page.id}: {type(e).__name__}: {e}")
        docs = dedupe_documents([d for _, page_docs in fetched for d in page_docs])[:max_documents]
        return RoundData(seed=seed, page_ids=tuple(p.id for p, _ in fetched), documents=tuple(docs),
                         failed_pages=tuple(failed), digest=documents_digest(docs))
