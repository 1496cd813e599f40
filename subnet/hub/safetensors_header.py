"""A strict reader of safetensors headers and shard indexes: whatever passes here, safetensors loads.

The safetensors library checks a file only when it is opened for loading, deep in a scoring
worker, and reports a bare error there. Checking the same rules up front makes a malformed file
a permanent, explained rejection at download time instead. The rules are the library's own
(`Metadata::validate` in safetensors' tensor.rs), a little stricter where a model never needs
the freedom:

- an 8-byte little-endian header length, at most 100,000,000 (the library's MAX_HEADER_SIZE),
  then that many bytes of UTF-8 JSON starting with '{';
- an object of tensor entries, each exactly {dtype, shape, data_offsets}, plus an optional
  `__metadata__` map of strings to strings;
- known dtypes, shapes of non-negative integers, offsets [begin, end] with begin <= end;
- the entries, in offset order, tile the data area exactly: the first begins at 0, each begins
  where the previous ended, each spans dtype size x number of elements bytes, and the last ends
  at the end of the file.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

from subnet.hub.bounded_json import bounded_int, parse_bounded
from subnet.hub.errors import ModelRejected

LIBRARY_HEADER_CAP = 100_000_000  # safetensors refuses longer headers (HeaderTooLarge)
# JSON values a header or index may hold per tensor (an entry has about 8) plus a few for metadata:
# this, not the byte size, is what bounds the memory a parse takes.
JSON_VALUES_PER_TENSOR = 16
JSON_METADATA_VALUES = 1024


def values_cap(n_tensors: int) -> int:
    return JSON_METADATA_VALUES + JSON_VALUES_PER_TENSOR * n_tensors
MAX_DIMS = 8
# Bytes per element of the dtypes a validator accepts: those safetensors and torch both load and
# copy into a float model. (The library knows a few more, such as U64 and the float8 kinds.)
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "F16": 2, "BF16": 2, "I32": 4, "F32": 4, "I64": 8, "F64": 8,
}
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}
_WHY = "weights_mismatch"


@dataclass(frozen=True)
class TensorSpec:
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _entry(file: str, name: str, raw: object, data_bytes: int) -> TensorSpec:
    where = f"{file}: tensor {name[:80]!r}"
    if not isinstance(raw, dict) or set(raw) != _ENTRY_KEYS:
        keys = sorted(raw)[:5] if isinstance(raw, dict) else type(raw).__name__
        raise ModelRejected(_WHY, f"{where} must have exactly dtype, shape and data_offsets, got {keys}")
    dtype = raw["dtype"]
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise ModelRejected(_WHY, f"{where} has dtype {str(dtype)[:20]!r}; allowed: {', '.join(DTYPE_SIZES)}")
    shape = raw["shape"]
    if not isinstance(shape, list) or len(shape) > MAX_DIMS:
        raise ModelRejected(_WHY, f"{where} shape must be a list of at most {MAX_DIMS} integers, got {str(shape)[:60]}")
    dims = tuple(bounded_int(d, what=f"{where} shape entry", reason=_WHY, low=0, high=data_bytes) for d in shape)
    offsets = raw["data_offsets"]
    if not isinstance(offsets, list) or len(offsets) != 2:
        raise ModelRejected(_WHY, f"{where} data_offsets must be [begin, end], got {str(offsets)[:60]}")
    begin, end = (bounded_int(o, what=f"{where} data offset", reason=_WHY, low=0, high=data_bytes) for o in offsets)
    if end < begin:
        raise ModelRejected(_WHY, f"{where} ends at {end:,} before it begins at {begin:,}")
    expected = math.prod(dims) * DTYPE_SIZES[dtype]
    if end - begin != expected:
        raise ModelRejected(
            _WHY, f"{where} spans {end - begin:,} bytes, but {dtype} x {list(dims)} needs {expected:,}"
        )
    return TensorSpec(dtype, dims, begin, end)


def _check_metadata(file: str, metadata: object) -> None:
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ModelRejected(_WHY, f"{file}: __metadata__ must map strings to strings")


def _check_tiling(file: str, tensors: dict[str, TensorSpec], data_bytes: int) -> None:
    position = 0
    for name, spec in sorted(tensors.items(), key=lambda kv: (kv[1].begin, kv[1].end)):
        if spec.begin != position:
            kind = "overlaps the previous tensor" if spec.begin < position else f"leaves a gap at byte {position:,}"
            raise ModelRejected(_WHY, f"{file}: tensor {name[:80]!r} at byte {spec.begin:,} {kind}")
        position = spec.end
    if position != data_bytes:
        raise ModelRejected(_WHY, f"{file}: tensors describe {position:,} data bytes, the file holds {data_bytes:,}")


def read_header(path: Path, *, max_header_bytes: int = LIBRARY_HEADER_CAP,
                max_tensors: int = 1 << 20) -> dict[str, TensorSpec]:
    """Tensor name -> TensorSpec for one safetensors file, after every check above; else ModelRejected."""
    path = Path(path)
    size = path.stat().st_size
    cap = min(max_header_bytes, LIBRARY_HEADER_CAP)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ModelRejected(_WHY, f"{path.name} is {size} bytes, too short for a safetensors file")
        (length,) = struct.unpack("<Q", head)
        if length > cap:
            raise ModelRejected(_WHY, f"{path.name} has a {length:,}-byte header, the limit is {cap:,}")
        if 8 + length > size:
            raise ModelRejected(_WHY, f"{path.name} claims a {length:,}-byte header but is {size:,} bytes")
        data = f.read(length)
    if not data.startswith(b"{"):
        raise ModelRejected(_WHY, f"{path.name}: the header does not start with '{{'")
    header = parse_bounded(data, what=f"{path.name} header", reason=_WHY, max_bytes=cap,
                           max_values=values_cap(max_tensors))
    if not isinstance(header, dict):
        raise ModelRejected(_WHY, f"{path.name}: the header is not a JSON object")
    if "__metadata__" in header:
        _check_metadata(path.name, header.pop("__metadata__"))
    if len(header) > max_tensors:
        raise ModelRejected(_WHY, f"{path.name} holds {len(header):,} tensors, the model has {max_tensors:,}")
    data_bytes = size - 8 - length
    tensors = {name: _entry(path.name, name, raw, data_bytes) for name, raw in header.items()}
    _check_tiling(path.name, tensors, data_bytes)
    return tensors


def read_index(path: Path, *, max_bytes: int, is_safe_path, max_tensors: int = 1 << 20) -> dict[str, str]:
    """The weight map of a shard index (tensor name -> shard file name); else ModelRejected."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise ModelRejected("no_safetensors", f"{path.name} is {size:,} bytes, the limit is {max_bytes:,}")
    raw = parse_bounded(path.read_bytes(), what=path.name, reason="no_safetensors", max_bytes=max_bytes,
                        max_values=values_cap(max_tensors))
    weight_map = raw.get("weight_map") if isinstance(raw, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ModelRejected("no_safetensors", f"{path.name} has no weight_map object")
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not is_safe_path(shard) or not shard.endswith(".safetensors"):
            raise ModelRejected("no_safetensors", f"{path.name} maps {name[:80]!r} to a bad shard {str(shard)[:80]!r}")
    return weight_map
