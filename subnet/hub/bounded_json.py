"""JSON from a miner's repo, parsed within bounds: size, nesting depth, and number size.

Python's `json` has no limits of its own: a deeply nested document raises `RecursionError`, an
integer of 5,000 digits raises `ValueError` (the interpreter's digit limit), `1e999` silently
becomes infinity, and a large document costs many times its size in memory. Every JSON file a
validator reads from a repo (config.json, the shard index, safetensors headers) goes through
`parse_bounded`, which turns each of those into a `ModelRejected` naming the file and the bound.
"""

from __future__ import annotations

import math
from typing import Any

from subnet.hub.errors import ModelRejected

MAX_DEPTH = 32  # config.json nests 3 or 4 levels (text_config.rope_scaling); headers 3
MAX_INT_DIGITS = 24  # 10^24 is past any size, count or offset a model can have


class _Refused(ValueError):
    """Raised from inside the parser's hooks; `parse_bounded` turns it into ModelRejected."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(text):,} digits")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > 64:
        raise _Refused(f"a number written with {len(text):,} characters")
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:30]} is out of range")
    return value


def _parse_constant(name: str) -> float:
    raise _Refused(f"the non-standard constant {name}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _Refused(f"the key {dup[:80]!r} appears twice")
    return out


def _depth(value: Any) -> int:
    """Nesting depth, without recursion (the value may be as deep as the parser allowed)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def parse_bounded(data: bytes, *, what: str, reason: str, max_bytes: int, max_values: int | None = None) -> Any:
    """Parse `data` as strict JSON (no NaN, no duplicate keys) within the bounds; else ModelRejected(reason).

    `max_values` bounds the memory the parse can take: Python spends up to 64 bytes on a value that
    costs 3 bytes of text (`[],`), so a size cap alone still lets a document cost 20 times its size.
    Every value but the first follows a ',' or opens a '[' or '{', so counting those bytes (at C speed,
    before parsing) bounds the number of values from above.
    """
    if len(data) > max_bytes:
        raise ModelRejected(reason, f"{what} is {len(data):,} bytes, the limit is {max_bytes:,}")
    if max_values is not None:
        values = 1 + data.count(b",") + data.count(b"[") + data.count(b"{")
        if values > max_values:
            raise ModelRejected(reason, f"{what} holds up to {values:,} values, the limit is {max_values:,}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelRejected(reason, f"{what} is not UTF-8: {e}") from None
    import json

    try:
        value = json.loads(
            text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant,
            object_pairs_hook=_unique_keys,
        )
    except _Refused as e:
        raise ModelRejected(reason, f"{what} holds {e}") from None
    except RecursionError:
        raise ModelRejected(reason, f"{what} is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:  # JSONDecodeError, and anything else the decoder refuses
        raise ModelRejected(reason, f"{what} is not valid JSON: {e}") from None
    if _depth(value) > MAX_DEPTH:
        raise ModelRejected(reason, f"{what} is nested deeper than {MAX_DEPTH} levels")
    return value


def bounded_int(value: Any, *, what: str, reason: str, low: int, high: int) -> int:
    """`value` if it is a true integer (not a bool, not a float) in [low, high]; else ModelRejected."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        shown = repr(value) if not isinstance(value, (str, list, dict)) else f"{type(value).__name__} {repr(value)[:40]}"
        raise ModelRejected(reason, f"{what} must be an integer in [{low:,}, {high:,}], got {shown}")
    return value
