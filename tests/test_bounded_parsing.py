"""Bounded JSON, the strict safetensors header reader, the store's file rules and the cache's re-verification."""

from __future__ import annotations

import json
import os
import random
import struct
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from subnet.hub.bounded_json import MAX_DEPTH, bounded_int, parse_bounded
from subnet.hub.download import MAX_REPO_FILES, check_listing, check_tree
from subnet.hub.errors import ModelRejected
from subnet.hub.safetensors_header import DTYPE_SIZES, LIBRARY_HEADER_CAP, read_header
from subnet.hub.store import RepoFile


def parse(data: bytes, cap: int = 1 << 20):
    return parse_bounded(data, what="doc.json", reason="bad", max_bytes=cap)


@pytest.mark.parametrize("data,why", [
    (b'{"a": ' + b"9" * 5000 + b"}", "digits"),
    (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
    (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested deeper"),
    (b'{"a": 1e999}', "out of range"),
    (b'{"a": -Infinity}', "Infinity"),
    (b'{"a": NaN}', "NaN"),
    (b'{"a": 1, "a": 2}', "appears twice"),
    (b'{"a": "\xff"}', "not UTF-8"),
    (b'{"a": ', "not valid JSON"),
    (b" " * 2_000_000, "limit is"),
])
def test_json_bombs_are_rejected_with_their_detail(data, why):
    with pytest.raises(ModelRejected) as e:
        parse(data)
    assert e.value.reason == "bad" and why in e.value.detail and "doc.json" in e.value.detail


def test_ordinary_json_parses():
    assert parse(b'{"a": [1, 2.5, {"b": null}], "c": "x"}') == {"a": [1, 2.5, {"b": None}], "c": "x"}


@pytest.mark.parametrize("value", [True, 2.0, "2", None, [2], -1, 10**13])
def test_bounded_int_refuses_everything_but_an_integer_in_range(value):
    with pytest.raises(ModelRejected):
        bounded_int(value, what="n", reason="bad_config", low=0, high=10**12)


# ----------------------------------------------------------------------------- safetensors headers


def _valid(path, n: int = 3):
    save_file({f"t{i}": torch.randn(i + 1, 3) for i in range(n)}, str(path), metadata={"format": "pt"})
    return path


def _rewrite(path, header, length=None):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + raw[8 + n :])


def _header(path) -> dict:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n])


def _loads(path) -> bool:
    try:
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():
                f.get_tensor(name)
    except Exception:  # noqa: BLE001 - any refusal by the library
        return False
    return True


def test_the_library_cap_is_the_safetensors_one():
    assert LIBRARY_HEADER_CAP == 100_000_000


def test_valid_file_passes_and_cap_is_enforced(tmp_path):
    path = _valid(tmp_path / "m.safetensors")
    specs = read_header(path)
    assert {k: v.shape for k, v in specs.items()} == {"t0": (1, 3), "t1": (2, 3), "t2": (3, 3)}
    with pytest.raises(ModelRejected, match="limit"):
        read_header(path, max_header_bytes=16)


MUTATIONS = {
    "overlap": lambda h: h["t1"].update(data_offsets=[h["t1"]["data_offsets"][0] - 4, h["t1"]["data_offsets"][1] - 4]),
    "gap": lambda h: [h[k].update(data_offsets=[h[k]["data_offsets"][0] + 4, h[k]["data_offsets"][1] + 4])
                      for k in ("t1", "t2")],
    "dtype_span": lambda h: h["t0"].update(dtype="F16"),
    "unknown_dtype": lambda h: h["t0"].update(dtype="F8_E4M3"),
    "string_shape": lambda h: h["t0"].update(shape=["1", "3"]),
    "float_shape": lambda h: h["t0"].update(shape=[1.0, 3.0]),
    "bool_shape": lambda h: h["t0"].update(shape=[True, 3]),
    "negative_shape": lambda h: h["t0"].update(shape=[-1, -3]),
    "reversed": lambda h: h["t0"].update(data_offsets=h["t0"]["data_offsets"][::-1]),
    "extra_key": lambda h: h["t0"].update(extra=1),
    "missing_key": lambda h: h["t0"].pop("shape"),
    "metadata_not_strings": lambda h: h.update(__metadata__={"format": 1}),
    "entry_not_object": lambda h: h.update(t0=[1, 2]),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_each_lie_in_a_header_is_refused_with_detail(tmp_path, name):
    path = _valid(tmp_path / "m.safetensors")
    header = _header(path)
    MUTATIONS[name](header)
    _rewrite(path, header)
    with pytest.raises(ModelRejected) as e:
        read_header(path)
    assert e.value.reason == "weights_mismatch" and "m.safetensors" in e.value.detail


def test_lengths_that_lie_are_refused(tmp_path):
    path = _valid(tmp_path / "m.safetensors")
    header = _header(path)
    for length in (200_000_000, 10**12, 0):
        _rewrite(path, header, length=length)
        with pytest.raises(ModelRejected):
            read_header(path)


def test_whatever_passes_the_header_check_loads(tmp_path):
    """Random corruptions of a valid file's header: the check refuses, or safetensors loads every tensor."""
    rng = random.Random(0)
    base = _valid(tmp_path / "base.safetensors", n=4)
    header0 = _header(base)
    passed = 0
    for trial in range(300):
        header = json.loads(json.dumps(header0))
        name = rng.choice([k for k in header if k != "__metadata__"])
        field = rng.choice(["dtype", "shape", "data_offsets"])
        if field == "dtype":
            header[name]["dtype"] = rng.choice(list(DTYPE_SIZES) + ["F8_E5M2", "U64", "X"])
        elif field == "shape":
            header[name]["shape"] = [rng.randint(0, 6) for _ in range(rng.randint(0, 3))]
        else:
            a, b = header[name]["data_offsets"]
            header[name]["data_offsets"] = [a + rng.randint(-8, 8), b + rng.randint(-8, 8)]
        path = tmp_path / f"t{trial}.safetensors"
        path.write_bytes(base.read_bytes())
        _rewrite(path, header)
        try:
            read_header(path)
        except ModelRejected:
            continue
        passed += 1
        assert _loads(path), header
    assert passed > 0  # some mutations are harmless (e.g. a same-size dtype): they must load


# ----------------------------------------------------------------------------- file rules


def test_listing_caps_file_count_and_refuses_non_utf8_names():
    many = [RepoFile("model.safetensors", 10)] + [RepoFile(f"n{i}.md", 1) for i in range(MAX_REPO_FILES)]
    with pytest.raises(ModelRejected) as e:
        check_listing(many, max_bytes=10**9)
    assert e.value.reason == "too_many_files"
    with pytest.raises(ModelRejected) as e:
        check_listing([RepoFile("model.safetensors", 10), RepoFile("x\udcff.json", 1)], max_bytes=10**9)
    assert e.value.reason == "bad_listing"


def test_tree_refuses_symlinks_special_files_and_non_utf8_names(tmp_path):
    (tmp_path / "ok.json").write_text("{}")
    check_tree(tmp_path)
    for make, reason in (
        (lambda d: (d / "model.safetensors").symlink_to("/etc/passwd"), "forbidden_files"),
        (lambda d: os.mkfifo(d / "pipe.md"), "forbidden_files"),
        (lambda d: open(os.path.join(os.fsencode(d), b"\xff.json"), "wb").close(), "bad_listing"),
    ):
        d = tmp_path / f"case-{reason}-{time.monotonic_ns()}"
        d.mkdir()
        make(d)
        with pytest.raises(ModelRejected) as e:
            check_tree(d)
        assert e.value.reason == reason


def test_the_value_count_bounds_memory_before_parsing():
    cheap_text_costly_objects = b"[" + b",".join([b"[]"] * 10_000) + b"]"
    with pytest.raises(ModelRejected, match="values"):
        parse_bounded(cheap_text_costly_objects, what="doc.json", reason="bad", max_bytes=1 << 20, max_values=5_000)
    assert len(parse_bounded(cheap_text_costly_objects, what="d", reason="bad", max_bytes=1 << 20,
                             max_values=30_000)) == 10_000
