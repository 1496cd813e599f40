"""FineWebSource against a local datasets-server: agreement between validators, and faults that cost only retries."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import pytest

from subnet.competitions import get_competition
from subnet.data.fineweb import FineWebSource, choose_page, parse_sizes
from subnet.data.sampling import build_round, documents_digest
from tests.fakes.datasets_server import running_server

CONFIGS = {"CC-MAIN-2013-20": 2_000, "CC-MAIN-2020-05": 6_000, "CC-MAIN-2024-10": 12_000}
SEED = "0x" + "5a" * 32


def fast_source(url: str, **kw) -> FineWebSource:
    settings = dict(page_size=20, connections=4, timeout_s=0.5, retries=3, backoff_s=0.01)
    settings.update(kw)
    return FineWebSource(endpoint=url, **settings)


@pytest.fixture(scope="module")
def server():
    with running_server(configs=dict(CONFIGS), latency_s=0.005, slow_s=1.5) as s:
        yield s


@pytest.fixture(autouse=True)
def clean_faults(server):
    server.page_faults.clear()
    server.all_page_faults.clear()
    server.size_faults.clear()
    server.empty_pages.clear()
    server.requests.clear()
    yield


def test_two_validators_agree_byte_for_byte_and_another_seed_differs(server):
    a = fast_source(server.url).fetch_round(SEED, pages=5, page_size=20, max_documents=1000)
    b = fast_source(server.url, connections=1).fetch_round(SEED, pages=5, page_size=20, max_documents=1000)
    assert a == b and len(a.page_ids) == 5 and len(a.documents) == 100 and not a.failed_pages
    assert a.digest == documents_digest(a.documents)
    other = fast_source(server.url).fetch_round("0x" + "5b" * 32, pages=5, page_size=20, max_documents=1000)
    assert set(other.page_ids).isdisjoint(a.page_ids) and other.digest != a.digest
    assert a.documents[0].id == f"{a.page_ids[0]}/0"


def test_page_choice_is_a_pure_function_weighted_by_rows_and_page_aligned():
    sizes = {"a": 100, "b": 900}
    pages = [choose_page("0x01", k, sizes, 50) for k in range(400)]
    assert pages == [choose_page("0x01", k, dict(reversed(sizes.items())), 50) for k in range(400)]
    assert all(p.offset % 50 == 0 and p.offset < sizes[p.config] for p in pages)
    share_b = sum(p.config == "b" for p in pages) / len(pages)
    assert 0.8 < share_b < 0.97


def test_size_skips_default_config_and_rejects_garbage():
    from subnet.data.fineweb import FetchError

    payload = {"size": {"splits": [{"config": "default", "split": "train", "num_rows": 10},
                                   {"config": "x", "split": "train", "num_rows": 4}]}}
    assert parse_sizes(payload) == {"x": 4}
    with pytest.raises(FetchError, match="malformed"):
        parse_sizes({"error": "nope"})


def test_transient_500s_and_malformed_json_cost_retries_not_documents(server):
    server.all_page_faults.extend(["500", "malformed"])
    clean = fast_source(server.url, retries=3)
    data = clean.fetch_round(SEED, pages=4, page_size=20, max_documents=1000)
    assert not data.failed_pages and len(data.page_ids) == 4
    for pid in data.page_ids:
        config, offset = pid.rsplit("/", 1)
        assert server.requests[(config, int(offset))] >= 3
    server.all_page_faults.clear()
    server.page_faults.clear()
    assert fast_source(server.url).fetch_round(SEED, pages=4, page_size=20, max_documents=1000) == data


def test_a_page_that_keeps_failing_is_recorded_and_replaced_by_the_next_seeded_page(server):
    sizes = dict(CONFIGS)
    dead = choose_page(SEED, 1, sizes, 20)
    server.page_faults[(dead.config, dead.offset)] = ["500"] * 100
    data = fast_source(server.url, retries=2).fetch_round(SEED, pages=3, page_size=20, max_documents=1000)
    expected = [choose_page(SEED, k, sizes, 20).id for k in (0, 2, 3)]
    assert list(data.page_ids) == expected
    assert len(data.failed_pages) == 1 and data.failed_pages[0].startswith(dead.id) and "HTTP 500" in data.failed_pages[0]
    assert server.requests[(dead.config, dead.offset)] == 3  # first try + 2 retries
    # A second validator seeing the same failure agrees exactly.
    server.page_faults[(dead.config, dead.offset)] = ["500"] * 100
    assert fast_source(server.url, retries=2, connections=1).fetch_round(SEED, 3, 20, 1000) == data


def test_slow_pages_time_out_and_empty_pages_count_as_fetched(server):
    sizes = dict(CONFIGS)
    slow, empty = choose_page(SEED, 0, sizes, 20), choose_page(SEED, 1, sizes, 20)
    server.page_faults[(slow.config, slow.offset)] = ["slow"]  # one slow answer, then normal service
    server.empty_pages.add((empty.config, empty.offset))
    data = fast_source(server.url, timeout_s=0.3, retries=2).fetch_round(SEED, 3, 20, 1000)
    assert list(data.page_ids) == [choose_page(SEED, k, sizes, 20).id for k in range(3)]
    assert not data.failed_pages and len(data.documents) == 40
    assert not any(d.id.startswith(empty.id + "/") for d in data.documents)


def test_extra_pages_are_bounded_and_a_dead_server_never_raises(server):
    server.all_page_faults.extend(["500"] * 50)
    data = fast_source(server.url, retries=1, extra_pages=2).fetch_round(SEED, 3, 20, 1000)
    assert data.documents == () and data.page_ids == () and len(data.failed_pages) == 5
    dead = fast_source("http://127.0.0.1:9", retries=1).fetch_round(SEED, 2, 20, 1000)
    assert dead.documents == () and dead.failed_pages[0].startswith("size: connection error")


def test_size_is_fetched_once_and_retried(server):
    server.size_faults.extend(["500", "malformed"])
    source = fast_source(server.url)
    source.fetch_round(SEED, 1, 20, 10)
    source.fetch_round(SEED, 1, 20, 10)
    assert server.requests["size"] == 3


def test_sync_wrapper_works_from_a_thread_and_inside_a_running_loop(server):
    source = fast_source(server.url)
    expected = source.fetch_round(SEED, 2, 20, 1000)
    results = []
    t = threading.Thread(target=lambda: results.append(source.fetch_round(SEED, 2, 20, 1000)))
    t.start()
    t.join(20)

    async def inside_loop():
        return source.fetch_round(SEED, 2, 20, 1000)

    assert results == [expected] and asyncio.run(inside_loop()) == expected


def test_build_round_caps_documents_and_keeps_failures(server):
    comp = dataclasses.replace(get_competition("tiny"), dataset="fineweb")
    data = build_round(fast_source(server.url), SEED, comp)
    assert len(data.page_ids) == comp.sampling.pages
    assert len(data.documents) == comp.sampling.max_documents


def test_time_queued_behind_other_pages_does_not_count_toward_the_request_timeout():
    with running_server(configs=dict(CONFIGS), latency_s=0.03) as slowish:
        source = fast_source(slowish.url, connections=1, timeout_s=0.3, retries=0)
        data = source.fetch_round(SEED, pages=20, page_size=5, max_documents=1000)
    assert not data.failed_pages and len(data.page_ids) == 20  # took > 0.6 s in all, 0.03 s a request
