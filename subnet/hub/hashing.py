"""The content hash of a model directory, and the hotkey-bound hash that goes on chain.

Format shared with public subnets 9 and 29, so miners' tooling keeps working:
directory_hash = base64(sha256(concat(base64(sha256(file)) for files in sorted path order)))
secure_hash    = base64(sha256(directory_hash + hotkey_ss58))
Binding the hash to the hotkey stops a copier from reusing someone else's commitment string.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def model_files(directory: str | Path) -> list[Path]:
    """The files that make up a model: every regular file, hidden folders (.cache, .git) excluded."""
    root = Path(directory)
    files = [
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def file_hash(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return base64.b64encode(h.digest()).decode()


def combine_file_hashes(file_hashes: list[str]) -> str:
    """The directory hash from its files' hashes, in sorted path order (lets a cache re-hash only some files)."""
    joined = "".join(file_hashes)
    return base64.b64encode(hashlib.sha256(joined.encode()).digest()).decode()


def directory_hash(directory: str | Path) -> str:
    files = model_files(directory)
    if not files:
        raise ValueError(f"no model files in {directory}")
    return combine_file_hashes([file_hash(p) for p in files])


def secure_hash(dir_hash: str, hotkey: str) -> str:
    return base64.b64encode(hashlib.sha256((dir_hash + hotkey).encode()).digest()).decode()
