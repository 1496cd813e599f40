"""Parquet sources: a local directory, and FineWeb's files on a fake Hub read with range requests; make_source."""

from __future__ import annotations

import dataclasses
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from subnet.competitions import get_competition
from subnet.data.fineweb import FineWebSource
from subnet.data.hub_parquet import HubParquetSource
from subnet.data.parquet import ParquetSource, choose_file
from subnet.data.sources import make_source
from subnet.data.synthetic import SyntheticSource
from tests.fakes.parquet_hub import fineweb_files, fineweb_parquet, running_parquet_hub

SEED = "0x" + "c3" * 32


def write_shard(path, n_rows, row_group_size, tag, blank_every=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    texts = [f"{tag} document {i}: " + "word " * (i % 7) for i in range(n_rows)]
    if blank_every:
        texts = ["   " if i % blank_every == 0 else t for i, t in enumerate(texts)]
    pq.write_table(pa.table({"text": texts, "id": [f"{tag}-{i}" for i in range(n_rows)]}), path,
                   row_group_size=row_group_size)


@pytest.fixture
def shards(tmp_path):
    root = tmp_path / "sample" / "10BT"
    write_shard(root / "000_00000.parquet", 400, 100, "a")
    write_shard(root / "001_00000.parquet", 1200, 300, "b")
    return tmp_path


@pytest.fixture(scope="module")
def hub_files():
    # Real parquet files shaped like FineWeb's: its columns, several row groups per file, three dumps,
    # and a sample/ subset that must never be sampled.
    files = fineweb_files({"CC-MAIN-2013-20": 1, "CC-MAIN-2020-05": 2, "CC-MAIN-2024-10": 2},
                          rows_per_file=600, row_group_size=200)
    files["data/sample/10BT/000_00000.parquet"] = files["data/CC-MAIN-2013-20/000_00000.parquet"]
    return files


def test_same_seed_same_pages_different_seed_different_pages(shards):
    a = ParquetSource(shards).fetch_round(SEED, pages=4, page_size=25, max_documents=1000)
    b = ParquetSource(shards).fetch_round(SEED, pages=4, page_size=25, max_documents=1000)
    c = ParquetSource(shards).fetch_round("0x" + "c4" * 32, pages=4, page_size=25, max_documents=1000)
    assert a == b and len(a.page_ids) == 4 and a.complete
    assert a.page_ids != c.page_ids and a.digest != c.digest
    assert all(pid.startswith("sample/10BT/") for pid in a.page_ids)
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
    assert len(data.page_ids) == 3 and len(data.documents) > 100


def test_files_are_chosen_in_proportion_to_bytes(shards):
    _, files = ParquetSource(shards).snapshot()
    picks = [choose_file(SEED, k, files).path for k in range(600)]
    share_b = sum(p.endswith("001_00000.parquet") for p in picks) / len(picks)
    expected = max(f.size for f in files) / sum(f.size for f in files)
    assert abs(share_b - expected) < 0.07


def test_blank_texts_are_dropped_and_counted(tmp_path):
    write_shard(tmp_path / "x.parquet", 200, 100, "x", blank_every=4)
    data = ParquetSource(tmp_path).fetch_round(SEED, pages=1, page_size=100, max_documents=1000)
    assert len(data.documents) == 75 and dict(data.dropped) == {"blank": 25}


def test_an_unreadable_page_is_recorded_and_not_replaced_unless_allowed(shards):
    source = ParquetSource(shards)
    _, files = source.snapshot()
    broken = choose_file(SEED, 0, files)
    data = (shards / broken.path).read_bytes()
    (shards / broken.path).write_bytes(data[:-64] + b"x" * 64)  # same size (same choice), footer destroyed
    data = source.fetch_round(SEED, pages=2, page_size=25, max_documents=1000)
    assert data.failed_pages[0].startswith("k=0: ") and len(data.page_ids) < 2 and not data.complete
    allowed = ParquetSource(shards, extra_pages=30).fetch_round(SEED, pages=2, page_size=25, max_documents=1000)
    assert len(allowed.page_ids) == 2 and allowed.replaced_pages and not allowed.complete


def test_bad_directories_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        ParquetSource(tmp_path / "missing")
    data = ParquetSource(tmp_path).fetch_round(SEED, 1, 10, 10)
    assert data.documents == () and "no non-empty" in data.failed_pages[0]


def test_hub_parquet_pages_are_row_groups_read_with_range_requests(hub_files):
    with running_parquet_hub(hub_files) as hub:
        a = HubParquetSource(endpoint=hub.url, workers=4).fetch_round(SEED, pages=5, page_size=50, max_documents=1000)
        served = hub.bytes_served
        b = HubParquetSource(endpoint=hub.url, workers=1).fetch_round(SEED, pages=5, page_size=50, max_documents=1000)
    assert a == b and a.complete and len(a.page_ids) == 5 and a.revision == hub.main
    assert a.source == "fineweb-parquet:HuggingFaceFW/fineweb"
    assert all(pid.startswith("data/CC-MAIN-") for pid in a.page_ids)  # never the sample/ subset
    assert dict(a.configs).keys() == {"data/CC-MAIN-2013-20", "data/CC-MAIN-2020-05", "data/CC-MAIN-2024-10"}
    # Rows are the page-aligned slice of the chosen row group, in the file as written.
    path, group, offset = a.page_ids[0].rsplit("/", 2)
    table = pq.ParquetFile(pa.BufferReader(hub_files[path])).read_row_group(int(group), columns=["text"])
    assert a.documents[0].text == table.column("text")[int(offset)].as_py()
    assert served < 0.6 * sum(len(hub_files[p.rsplit("/", 2)[0]]) for p in set(a.page_ids))  # ranges, not files


def test_hub_parquet_pinned_to_a_commit_ignores_what_the_hub_gains(hub_files):
    with running_parquet_hub(hub_files) as hub:
        pinned = hub.main
        before = HubParquetSource(endpoint=hub.url, revision=pinned).fetch_round(SEED, 4, 50, 1000)
        hub.publish({"data/CC-MAIN-2025-05/000_00000.parquet": fineweb_parquet("CC-MAIN-2025-05", 0, 2000, 200)})
        after_pinned = HubParquetSource(endpoint=hub.url, revision=pinned).fetch_round(SEED, 4, 50, 1000)
        after_main = HubParquetSource(endpoint=hub.url).fetch_round(SEED, 4, 50, 1000)
    assert after_pinned == before
    assert after_main.revision == hub.main != pinned and "data/CC-MAIN-2025-05" in dict(after_main.configs)


def test_hub_parquet_retries_429_after_retry_after_and_fails_a_page_on_500s(hub_files):
    with running_parquet_hub(hub_files, retry_after="0") as hub:
        first = HubParquetSource(endpoint=hub.url).fetch_round(SEED, 3, 50, 1000)
        path = first.page_ids[0].rsplit("/", 2)[0]
        hub.faults[path] = ["429"]
        start = time.monotonic()
        again = HubParquetSource(endpoint=hub.url).fetch_round(SEED, 3, 50, 1000)
        assert again == first and hub.faults[path] == [] and time.monotonic() - start >= 1.0  # Retry-After + 1 s
        hub.faults[path] = ["500"] * 50  # huggingface_hub retries 5xx for ~23 s: the deadline cuts that short
        broken = HubParquetSource(endpoint=hub.url, deadline_s=2.0).fetch_round(SEED, 3, 50, 1000)
    assert not broken.complete and broken.failed_pages and "deadline" in broken.failed_pages[0]
    assert path not in {p.rsplit("/", 2)[0] for p in broken.page_ids}


def test_hub_parquet_a_dripping_server_cannot_hold_the_round_past_its_deadline(hub_files):
    with running_parquet_hub(hub_files, drip_interval_s=0.05) as hub:
        for path in hub_files:
            hub.faults[path] = ["drip"] * 5
        start = time.monotonic()
        data = HubParquetSource(endpoint=hub.url, deadline_s=1.5).fetch_round(SEED, 3, 50, 1000)
        elapsed = time.monotonic() - start
    assert elapsed < 3.0 and not data.page_ids and all("deadline" in f for f in data.failed_pages)


def test_make_source_dispatches_on_the_dataset_field(shards):
    tiny = get_competition("tiny")
    assert isinstance(make_source(tiny), SyntheticSource)
    rows = make_source(dataclasses.replace(tiny, dataset="fineweb-rows"), endpoint="http://127.0.0.1:1",
                       connections=2, hub_endpoint="http://127.0.0.1:2")
    assert isinstance(rows, FineWebSource) and rows.endpoint == "http://127.0.0.1:1" and rows.connections == 2
    hub = make_source(dataclasses.replace(tiny, dataset="fineweb-parquet@" + "a" * 40),
                      endpoint="http://127.0.0.1:1", hub_endpoint="http://127.0.0.1:2")
    assert isinstance(hub, HubParquetSource) and hub.revision == "a" * 40 and hub.endpoint == "http://127.0.0.1:2"
    assert isinstance(make_source(dataclasses.replace(tiny, dataset="fineweb")), (FineWebSource, HubParquetSource))
    assert isinstance(make_source(dataclasses.replace(tiny, dataset=f"parquet:{shards}")), ParquetSource)
    with pytest.raises(ValueError, match="unknown dataset 'hf:nope'"):
        make_source(dataclasses.replace(tiny, dataset="hf:nope"))
