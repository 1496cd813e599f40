"""ParquetSource over small shards written here, and make_source's dispatch."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from subnet.competitions import get_competition
from subnet.data.fineweb import FineWebSource
from subnet.data.parquet import ParquetSource, choose_row_group_page
from subnet.data.sources import make_source
from subnet.data.synthetic import SyntheticSource

SEED = "0x" + "c3" * 32


def write_shard(path, n_rows, row_group_size, tag):
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"text": [f"{tag} document {i}: " + "word " * (i % 7) for i in range(n_rows)],
                      "id": [f"{tag}-{i}" for i in range(n_rows)]})
    pq.write_table(table, path, row_group_size=row_group_size)


@pytest.fixture
def shards(tmp_path):
    root = tmp_path / "sample" / "10BT"
    write_shard(root / "000_00000.parquet", 400, 100, "a")
    write_shard(root / "001_00000.parquet", 1200, 300, "b")
    return tmp_path


def test_same_seed_same_pages_different_seed_different_pages(shards):
    a = ParquetSource(shards).fetch_round(SEED, pages=4, page_size=25, max_documents=1000)
    b = ParquetSource(shards).fetch_round(SEED, pages=4, page_size=25, max_documents=1000)
    c = ParquetSource(shards).fetch_round("0x" + "c4" * 32, pages=4, page_size=25, max_documents=1000)
    assert a == b and len(a.page_ids) == 4 and not a.failed_pages
    assert a.page_ids != c.page_ids and a.digest != c.digest
    assert all(pid.startswith("sample/10BT/") for pid in a.page_ids)
    # Rows are the page-aligned slice of the chosen row group.
    shard, group, offset = a.page_ids[0].rsplit("/", 2)
    tag = "a" if shard.endswith("000_00000.parquet") else "b"
    first_row = int(group) * (100 if tag == "a" else 300) + int(offset)
    assert a.documents[0].text.startswith(f"{tag} document {first_row}:")


def test_reads_only_the_chosen_row_group(shards, monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("read a whole file")

    monkeypatch.setattr(pq.ParquetFile, "read", forbidden)
    monkeypatch.setattr(pq, "read_table", forbidden)
    data = ParquetSource(shards).fetch_round(SEED, pages=3, page_size=50, max_documents=1000)
    assert len(data.documents) == 150


def test_files_are_chosen_in_proportion_to_rows(shards):
    source = ParquetSource(shards)
    picks = [choose_row_group_page(SEED, k, source.shards(), 10).shard.name for k in range(400)]
    share_b = sum(p.endswith("001_00000.parquet") for p in picks) / len(picks)
    assert 0.65 < share_b < 0.85  # 1200 of 1600 rows


def test_an_unreadable_page_is_recorded_and_replaced(shards):
    source = ParquetSource(shards, extra_pages=20)
    source.shards()  # footers cached; now break the file the first page comes from
    chosen = [choose_row_group_page(SEED, k, source.shards(), 25) for k in range(22)]
    broken = chosen[0].shard
    broken.path.write_bytes(b"not parquet any more")
    data = source.fetch_round(SEED, pages=2, page_size=25, max_documents=1000)
    readable = [p.id for p in chosen if p.shard != broken][:2]
    assert list(data.page_ids) == readable and len(data.documents) == 50
    assert data.failed_pages and all(f.startswith(broken.name) for f in data.failed_pages)
    assert data.failed_pages[0].startswith(chosen[0].id)


def test_bad_directories_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        ParquetSource(tmp_path / "missing")
    with pytest.raises(ValueError, match="no non-empty"):
        ParquetSource(tmp_path).fetch_round(SEED, 1, 10, 10)


def test_make_source_dispatches_on_the_dataset_field(shards):
    tiny = get_competition("tiny")
    assert isinstance(make_source(tiny), SyntheticSource)
    fw = make_source(dataclasses.replace(tiny, dataset="fineweb"), endpoint="http://127.0.0.1:1", connections=2)
    assert isinstance(fw, FineWebSource) and fw.endpoint == "http://127.0.0.1:1" and fw.connections == 2
    assert isinstance(make_source(dataclasses.replace(tiny, dataset=f"parquet:{shards}")), ParquetSource)
    with pytest.raises(ValueError, match="unknown dataset 'hf:nope'"):
        make_source(dataclasses.replace(tiny, dataset="hf:nope"))
