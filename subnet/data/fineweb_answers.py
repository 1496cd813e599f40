"""Strict readers of the datasets-server's /size and /rows answers.

Anything the server sends that is not what the API documents is a `FetchError` with a message
that names the field, never a traceback: a validator must be able to say which page was bad and
why. Only the `CC-MAIN-YYYY-WW` dumps are sampled: `default` is their union and the `sample-*`
configs are subsets of them, so sampling those too would weigh some documents twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from subnet.data.types import Document

DUMP_CONFIG = re.compile(r"^CC-MAIN-\d{4}-\d{2}$")


class FetchError(Exception):
    """One request failed; `retryable` says whether asking again may help (5xx, timeouts, bad JSON)."""

    def __init__(self, reason: str, retryable: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class SizeListing:
    """The dumps a /size answer offers (train rows per dump) and what the server says about itself."""

    configs: dict[str, int]
    notes: tuple[str, ...] = ()  # pending/failed jobs, partial sizes: recorded with the round


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _job_configs(payload: dict, key: str) -> list[str]:
    """Configs named by the `pending` or `failed` jobs (a dataset-level job names None: listed as '*')."""
    jobs = payload.get(key, [])
    if not isinstance(jobs, list) or not all(isinstance(j, dict) for j in jobs):
        raise FetchError(f"malformed /size answer: '{key}' is not a list of objects")
    return sorted({j.get("config") if isinstance(j.get("config"), str) else "*" for j in jobs})


def parse_size(payload: Any) -> SizeListing:
    """Train rows per dump; configs with pending or failed jobs are left out (their counts may change)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("size"), dict):
        raise FetchError("malformed /size answer: no 'size' object")
    splits = payload["size"].get("splits")
    if not isinstance(splits, list):
        raise FetchError("malformed /size answer: 'size.splits' is not a list")
    pending, failed = _job_configs(payload, "pending"), _job_configs(payload, "failed")
    partial = payload.get("partial", False)
    if not isinstance(partial, bool):
        raise FetchError(f"malformed /size answer: 'partial' is {partial!r}, not a boolean")
    configs: dict[str, int] = {}
    for i, split in enumerate(splits):
        if not isinstance(split, dict):
            raise FetchError(f"malformed /size answer: split {i} is {type(split).__name__}, not an object")
        config, name, rows = split.get("config"), split.get("split"), split.get("num_rows")
        if not isinstance(config, str) or not isinstance(name, str):
            raise FetchError(f"malformed /size answer: split {i} has no config or split name")
        if not _is_count(rows):
            raise FetchError(f"malformed /size answer: split {i} ({config}/{name}) num_rows is {rows!r}")
        if name == "train" and DUMP_CONFIG.match(config) and rows > 0:
            if config in configs:
                raise FetchError(f"malformed /size answer: {config}/train listed twice")
            configs[config] = rows
    notes = [f"pending: {', '.join(pending)}"] if pending else []
    notes += [f"failed: {', '.join(failed)}"] if failed else []
    notes += ["partial: row counts cover part of the data"] if partial else []
    for excluded in set(pending) | set(failed):
        configs.pop(excluded, None)
    if not configs:
        raise FetchError("/size lists no non-empty CC-MAIN-YYYY-WW train split", retryable=False)
    return SizeListing(configs, tuple(notes))


def parse_rows(payload: Any, page_id: str, offset: int, length: int) -> tuple[list[Document], dict[str, int]]:
    """Documents of a /rows answer, ids "<page id>/<index in page>", and how many rows were left out why.

    Blank texts are left out (nothing to predict); a text the server truncated is left out too,
    since scoring a cut text as if whole would misstate its loss. A row that is not what the API
    documents fails the page.
    """
    rows = payload.get("rows") if isinstance(payload, dict) else None
    if not isinstance(rows, list):
        raise FetchError(f"malformed /rows answer for {page_id}: no 'rows' list")
    if len(rows) > length:
        raise FetchError(f"malformed /rows answer for {page_id}: {len(rows)} rows, asked for {length}")
    docs: list[Document] = []
    dropped = {"blank": 0, "truncated": 0}
    for i, item in enumerate(rows):
        where = f"malformed /rows answer for {page_id}: row {i}"
        if not isinstance(item, dict):
            raise FetchError(f"{where} is {type(item).__name__}, not an object")
        row, idx, cut = item.get("row"), item.get("row_idx", offset + i), item.get("truncated_cells", [])
        if not isinstance(row, dict):
            raise FetchError(f"{where}: 'row' is {'null' if row is None else type(row).__name__}, not an object")
        if not _is_count(idx) or idx != offset + i:
            raise FetchError(f"{where}: row_idx {idx!r}, expected {offset + i}")
        if not isinstance(cut, list):
            raise FetchError(f"{where}: 'truncated_cells' is not a list")
        text = row.get("text")
        if not isinstance(text, str):
            raise FetchError(f"{where}: 'text' is {type(text).__name__}, not a string")
        if "text" in cut:
            dropped["truncated"] += 1
        elif not text.strip():
            dropped["blank"] += 1
        else:
            docs.append(Document(f"{page_id}/{i}", text))
    return docs, {k: v for k, v in dropped.items() if v}
