"""FineWebSource against a local datasets-server: agreement between validators, faults that cost only
retries or fail the round visibly, strict parsing and the round's data identity."""

from __future__ import annotations

import asyncio
import re
import dataclasses
import threading
import time

import pytest

from subnet.competitions import get_competition
from subnet.data.fineweb import FineWebSource, choose_page, parse_retry_after
from subnet.data.fineweb_answers import FetchError, parse_rows, parse_size
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
    server.blank_rows.clear()
    server.before_page.clear()
    server.requests.clear()
    server.pending, server.failed, server.partial = [], [], False
    server.configs.clear()
    server.configs.update(CONFIGS)
    server.__post_init__()
    server.revision = ""
    server.__post_init__()
    yield


def test_two_validators_agree_byte_for_byte_and_another_seed_differs(server):
    a = fast_source(server.url).fetch_round(SEED, pages=5, page_size=20, max_documents=1000)
    b = fast_source(server.url, connections=1).fetch_round(SEED, pages=5, page_size=20, max_documents=1000)
    assert a == b and len(a.page_ids) == 5 and len(a.documents) == 100 and a.complete
    assert a.digest == documents_digest(a.documents)
    assert a.revision == server.revision and a.revisions == (server.revision,)
    assert a.configs == tuple(sorted(CONFIGS.items())) and a.source == "fineweb-rows:HuggingFaceFW/fineweb"
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


def test_only_dumps_count_not_default_nor_the_sample_subsets(server):
    listing = parse_size(server.size_payload())
    assert listing.configs == CONFIGS and listing.notes == ()
    data = fast_source(server.url).fetch_round(SEED, pages=30, page_size=20, max_documents=10_000)
    assert {pid.rsplit("/", 1)[0] for pid in data.page_ids} <= set(CONFIGS)


def test_pending_failed_and_partial_leave_out_those_dumps_and_are_recorded(server):
    server.pending, server.failed, server.partial = ["CC-MAIN-2024-10"], ["CC-MAIN-2013-20"], True
    data = fast_source(server.url).fetch_round(SEED, pages=6, page_size=20, max_documents=1000)
    assert data.configs == (("CC-MAIN-2020-05", 6_000),)
    assert all(pid.startswith("CC-MAIN-2020-05/") for pid in data.page_ids)
    assert data.notes == ("pending: CC-MAIN-2024-10", "failed: CC-MAIN-2013-20",
                          "partial: row counts cover part of the data")


@pytest.mark.parametrize("payload, message", [
    ({"error": "nope"}, "no 'size' object"),
    ({"size": {"splits": ["CC-MAIN-2013-20"]}}, "split 0 is str, not an object"),
    ({"size": {"splits": {"config": "x"}}}, "'size.splits' is not a list"),
    ({"size": {"splits": [{"config": "CC-MAIN-2013-20", "split": "train", "num_rows": float("inf")}]}},
     "num_rows is inf"),
    ({"size": {"splits": [{"config": "CC-MAIN-2013-20", "split": "train", "num_rows": True}]}}, "num_rows is True"),
    ({"size": {"splits": [{"config": "CC-MAIN-2013-20", "split": "train", "num_rows": "12"}]}}, "num_rows is '12'"),
    ({"size": {"splits": []}, "pending": "yes"}, "'pending' is not a list"),
    ({"size": {"splits": []}, "partial": "no"}, "'partial' is 'no'"),
    ({"size": {"splits": [{"config": "default", "split": "train", "num_rows": 10},
                          {"config": "sample-10BT", "split": "train", "num_rows": 4}]}}, "no non-empty CC-MAIN"),
])
def test_a_malformed_size_answer_is_a_clear_error(payload, message):
    with pytest.raises(FetchError, match=message):
        parse_size(payload)


@pytest.mark.parametrize("fault", ["split-not-object", "num-rows-infinity"])
def test_a_malformed_size_answer_from_the_server_fails_the_round_cleanly(server, fault):
    server.size_faults.extend([fault] * 10)
    data = fast_source(server.url, retries=1).fetch_round(SEED, 2, 20, 100)
    assert data.documents == () and not data.complete
    assert data.failed_pages[0].startswith("size: malformed /size answer: split 0")


@pytest.mark.parametrize("item, message", [
    ({"row_idx": 0, "row": None, "truncated_cells": []}, "'row' is null"),
    ({"row_idx": 0, "row": ["text"], "truncated_cells": []}, "'row' is list"),
    ({"row_idx": 0, "row": {"text": None}, "truncated_cells": []}, "'text' is NoneType"),
    ({"row_idx": 5, "row": {"text": "x"}, "truncated_cells": []}, "row_idx 5, expected 0"),
    ({"row_idx": 0, "row": {"text": "x"}, "truncated_cells": "text"}, "'truncated_cells' is not a list"),
    ("a row", "is str, not an object"),
])
def test_a_malformed_row_is_a_clear_per_page_error(item, message):
    with pytest.raises(FetchError, match=f"CC/0: row 0.*{re.escape(message)}"):
        parse_rows({"rows": [item]}, "CC/0", 0, 10)
    with pytest.raises(FetchError, match="11 rows, asked for 10"):
        parse_rows({"rows": [{"row": {"text": "x"}}] * 11}, "CC/0", 0, 10)


@pytest.mark.parametrize("fault", ["row-null", "row-list", "row-idx"])
def test_a_page_that_keeps_answering_malformed_rows_fails_by_name_and_the_round_is_incomplete(server, fault):
    bad = choose_page(SEED, 1, dict(CONFIGS), 20)
    server.page_faults[(bad.config, bad.offset)] = [fault] * 10
    data = fast_source(server.url, retries=1).fetch_round(SEED, 3, 20, 1000)
    assert len(data.page_ids) == 2 and bad.id not in data.page_ids and not data.complete
    assert data.failed_pages == (data.failed_pages[0],) and data.failed_pages[0].startswith(f"{bad.id}: malformed")


def test_blank_and_truncated_texts_are_dropped_and_counted(server):
    first = choose_page(SEED, 0, dict(CONFIGS), 20)
    second = choose_page(SEED, 1, dict(CONFIGS), 20)
    server.blank_rows.update({(first.config, first.offset), (first.config, first.offset + 3)})
    server.page_faults[(second.config, second.offset)] = ["truncated"]
    data = fast_source(server.url).fetch_round(SEED, 2, 20, 1000)
    assert len(data.documents) == 37 and dict(data.dropped) == {"blank": 2, "truncated": 1}
    assert all(d.text.strip() for d in data.documents)
    assert f"{second.id}/0" not in {d.id for d in data.documents}


def test_transient_500s_429s_and_malformed_json_cost_retries_not_documents(server):
    server.retry_after = "0"
    server.all_page_faults.extend(["500", "malformed", "429"])
    data = fast_source(server.url, retries=3).fetch_round(SEED, pages=4, page_size=20, max_documents=1000)
    assert data.complete and len(data.page_ids) == 4
    for pid in data.page_ids:
        config, offset = pid.rsplit("/", 1)
        assert server.requests[(config, int(offset))] == 4
    server.all_page_faults.clear()
    server.page_faults.clear()
    assert fast_source(server.url).fetch_round(SEED, pages=4, page_size=20, max_documents=1000) == data


def test_429_honours_retry_after_for_every_request_of_the_round(server):
    server.retry_after = "1"
    first = choose_page(SEED, 0, dict(CONFIGS), 20)
    server.page_faults[(first.config, first.offset)] = ["429"]
    start = time.monotonic()
    data = fast_source(server.url, retries=2, backoff_s=0.01).fetch_round(SEED, 1, 20, 100)
    assert data.complete and time.monotonic() - start >= 1.0  # backoff alone would have waited 0.01 s
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 30) == 30
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_a_retry_after_past_the_deadline_fails_the_page_at_once(server):
    server.retry_after = "3600"
    first = choose_page(SEED, 0, dict(CONFIGS), 20)
    server.page_faults[(first.config, first.offset)] = ["429"]
    start = time.monotonic()
    data = fast_source(server.url, deadline_s=2.0).fetch_round(SEED, 1, 20, 100)
    assert time.monotonic() - start < 2.0 and not data.page_ids
    assert "HTTP 429" in data.failed_pages[0] and "deadline" in data.failed_pages[0]


def test_a_server_that_drips_bytes_cannot_hold_the_round_past_its_deadline(server):
    server.drip_interval_s = 0.05
    server.all_page_faults.extend(["drip"] * 20)
    start = time.monotonic()
    data = fast_source(server.url, timeout_s=30, retries=5, deadline_s=1.5).fetch_round(SEED, 3, 20, 1000)
    assert time.monotonic() - start < 3.0
    assert not data.page_ids and len(data.failed_pages) == 3


def test_a_page_that_keeps_failing_is_recorded_and_not_replaced(server):
    sizes = dict(CONFIGS)
    dead = choose_page(SEED, 1, sizes, 20)
    server.page_faults[(dead.config, dead.offset)] = ["500"] * 100
    data = fast_source(server.url, retries=2).fetch_round(SEED, pages=3, page_size=20, max_documents=1000)
    assert list(data.page_ids) == [choose_page(SEED, k, sizes, 20).id for k in (0, 2)]
    assert len(data.failed_pages) == 1 and data.failed_pages[0].startswith(dead.id) and "HTTP 500" in data.failed_pages[0]
    assert server.requests[(dead.config, dead.offset)] == 3  # first try + 2 retries
    assert server.requests[(choose_page(SEED, 3, sizes, 20).config, choose_page(SEED, 3, sizes, 20).offset)] == 0
    assert not data.complete and data.replaced_pages == ()


def test_replacement_only_when_allowed_and_then_recorded(server):
    sizes = dict(CONFIGS)
    dead = choose_page(SEED, 1, sizes, 20)
    server.page_faults[(dead.config, dead.offset)] = ["500"] * 100
    data = fast_source(server.url, retries=1, extra_pages=2).fetch_round(SEED, 3, 20, 1000)
    assert list(data.page_ids) == [choose_page(SEED, k, sizes, 20).id for k in (0, 2, 3)]
    assert data.replaced_pages == (f"{choose_page(SEED, 3, sizes, 20).id} (k=3)",) and not data.complete
    assert data.identity()["replaced_pages"] == list(data.replaced_pages)


def test_slow_pages_time_out_and_empty_pages_count_as_fetched(server):
    sizes = dict(CONFIGS)
    slow, empty = choose_page(SEED, 0, sizes, 20), choose_page(SEED, 1, sizes, 20)
    server.page_faults[(slow.config, slow.offset)] = ["slow"]  # one slow answer, then normal service
    server.empty_pages.add((empty.config, empty.offset))
    data = fast_source(server.url, timeout_s=0.3, retries=2).fetch_round(SEED, 3, 20, 1000)
    assert list(data.page_ids) == [choose_page(SEED, k, sizes, 20).id for k in range(3)]
    assert data.complete and len(data.documents) == 40


def test_a_dead_server_never_raises(server):
    dead = fast_source("http://127.0.0.1:9", retries=1).fetch_round(SEED, 2, 20, 1000)
    assert dead.documents == () and dead.failed_pages[0].startswith("size: connection error")


def test_size_is_read_every_round_so_a_new_dump_is_seen_at_once(server):
    source = fast_source(server.url)
    before = source.fetch_round(SEED, 1, 20, 10)
    server.add_dump("CC-MAIN-2025-05", 50_000)
    after = source.fetch_round(SEED, 1, 20, 10)
    assert server.requests["size"] == 2
    assert ("CC-MAIN-2025-05", 50_000) in after.configs and after.revision != before.revision
    assert after.identity()["identity_digest"] != before.identity()["identity_digest"]


def test_a_dataset_update_mid_round_is_fetched_again_from_the_new_listing(server):
    sizes = dict(CONFIGS)
    page = choose_page(SEED, 1, sizes, 20)
    server.before_page[(page.config, page.offset)] = lambda s: s.add_dump("CC-MAIN-2025-05", 50_000)
    data = fast_source(server.url).fetch_round(SEED, 4, 20, 1000)
    fresh = fast_source(server.url).fetch_round(SEED, 4, 20, 1000)
    assert data.revision == server.revision and not data.mixed_revisions
    assert data.digest == fresh.digest and data.page_ids == fresh.page_ids
    assert data.notes[-1].startswith("refetched after a revision change")


def test_an_update_that_keeps_changing_is_recorded_as_mixed(server):
    def bump(s):
        s.add_dump(f"CC-MAIN-2030-{len(s.configs):02d}", 10)
        for k in range(40):  # every page of the refetch changes the revision again
            p = choose_page(SEED, k, dict(s.configs), 20)
            s.before_page[(p.config, p.offset)] = lambda s2: s2.add_dump(f"CC-MAIN-2031-{len(s2.configs):02d}", 10)

    page = choose_page(SEED, 0, dict(CONFIGS), 20)
    server.before_page[(page.config, page.offset)] = bump
    data = fast_source(server.url).fetch_round(SEED, 2, 20, 1000)
    assert data.mixed_revisions and not data.complete and data.identity()["mixed_revisions"]


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
    comp = dataclasses.replace(get_competition("tiny"), dataset="fineweb-rows")
    data = build_round(fast_source(server.url), SEED, comp)
    assert len(data.page_ids) == comp.sampling.pages
    assert len(data.documents) == comp.sampling.max_documents


def test_time_queued_behind_other_pages_does_not_count_toward_the_request_timeout():
    with running_server(configs=dict(CONFIGS), latency_s=0.03) as slowish:
        source = fast_source(slowish.url, connections=1, timeout_s=0.3, retries=0)
        data = source.fetch_round(SEED, pages=20, page_size=5, max_documents=1000)
    assert data.complete and len(data.page_ids) == 20  # took > 0.6 s in all, 0.03 s a request


def test_page_level_parsers_keep_their_simple_form():
    from subnet.data.fineweb import Page, parse_rows as parse_page_rows, parse_sizes

    page = Page("CC-MAIN-2013-20", 40, 2)
    ok = {"rows": [{"row_idx": 40, "row": {"text": "a"}, "truncated_cells": []},
                   {"row_idx": 41, "row": {"text": " "}, "truncated_cells": []}]}
    assert [d.id for d in parse_page_rows(ok, page)] == ["CC-MAIN-2013-20/40/0"]
    with pytest.raises(FetchError, match="'row' is null"):
        parse_page_rows({"rows": [{"row_idx": 40, "row": None}]}, page)
    assert parse_sizes({"size": {"splits": [{"config": "CC-MAIN-2013-20", "split": "train", "num_rows": 9},
                                            {"config": "sample-10BT", "split": "train", "num_rows": 9}]}}) \
        == {"CC-MAIN-2013-20": 9}
