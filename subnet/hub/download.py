"""Fetching a miner's model safely, and the file rules every store shares.

The rules live here, once: which files a repo may hold, which ones a validator downloads, and
how big a revision may be. Both stores (`LocalStore`, `HuggingFaceStore`) call them, so the Hub
and devnet reject the same models for the same reasons.

`fetch_verified` is the validator's one way in: list the pinned revision, check its size and
files before any byte is downloaded, download into a scratch directory, bind the content hash
to the miner's hotkey, and only then move the directory into the per-hotkey cache with a marker
so the next round reuses it without downloading again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Iterable

from subnet.hub.errors import ModelRejected
from subnet.hub.hashing import directory_hash, model_files, secure_hash
from subnet.hub.model_ref import ModelRef
from subnet.hub.store import ALLOWED_SUFFIXES, ModelStore, RepoFile

# A repo holding any of these is refused outright: pickles run code when loaded, and code files
# only make sense with trust_remote_code, which we never set.
FORBIDDEN_SUFFIXES = (
    ".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz",
    ".py", ".pyc", ".pyo", ".so", ".dll", ".dylib", ".exe", ".sh",
)
MARKER = ".verified"  # hidden, so directory_hash ignores it
_PARTIAL_PREFIX = ".partial-"
_HOTKEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")


# ----------------------------------------------------------------------------- shared file rules


def _suffix(path: str) -> str:
    return PurePosixPath(path).suffix.lower()


def is_safe_path(path: str) -> bool:
    """A relative POSIX path with no '..', no absolute root and no hidden component."""
    p = PurePosixPath(path)
    return bool(path) and not p.is_absolute() and "\\" not in path and all(
        part not in ("", ".", "..") and not part.startswith(".") for part in p.parts
    )


def is_wanted(path: str) -> bool:
    """Whether a validator downloads this repo file (hidden files such as .gitattributes are skipped)."""
    return is_safe_path(path) and _suffix(path) in ALLOWED_SUFFIXES


def check_listing(files: Iterable[RepoFile], max_bytes: int) -> list[RepoFile]:
    """Apply the repo rules to a revision's listing; return the files to download.

    Refuses, before any download: pickles or code anywhere in the repo ('forbidden_files'),
    path tricks ('forbidden_files'), no safetensors weights ('no_safetensors'), and a revision
    whose total size (every file, as the store reports it) exceeds `max_bytes` ('too_large').
    """
    files = list(files)
    forbidden = sorted(f.path for f in files if _suffix(f.path) in FORBIDDEN_SUFFIXES)
    if forbidden:
        raise ModelRejected("forbidden_files", f"repo holds pickle or code files: {', '.join(forbidden[:5])}")
    unsafe = sorted(f.path for f in files if ".." in PurePosixPath(f.path).parts or f.path.startswith("/"))
    if unsafe:
        raise ModelRejected("forbidden_files", f"repo holds files with unsafe paths: {', '.join(unsafe[:5])}")
    negative = [f.path for f in files if f.size is None or f.size < 0]
    if negative:
        raise ModelRejected("bad_listing", f"store reports no size for: {', '.join(negative[:5])}")
    total = sum(f.size for f in files)
    if total > max_bytes:
        raise ModelRejected("too_large", f"revision holds {total:,} bytes, the limit is {max_bytes:,}")
    wanted = [f for f in files if is_wanted(f.path)]
    if not any(_suffix(f.path) == ".safetensors" for f in wanted):
        raise ModelRejected("no_safetensors", "repo holds no .safetensors weights")
    return sorted(wanted, key=lambda f: f.path)


def check_downloaded(directory: Path, max_bytes: int) -> int:
    """Re-check what actually landed on disk: a store can lie about sizes. Returns the byte total."""
    files = model_files(directory)
    bad = [p.relative_to(directory).as_posix() for p in files if not is_wanted(p.relative_to(directory).as_posix())]
    if bad:
        raise ModelRejected("forbidden_files", f"download produced unexpected files: {', '.join(bad[:5])}")
    total = sum(p.stat().st_size for p in files)
    if total > max_bytes:
        raise ModelRejected("too_large", f"downloaded files hold {total:,} bytes, the limit is {max_bytes:,}")
    return total


def check_upload_dir(local_dir: Path) -> list[Path]:
    """The files a miner may upload: exactly those a validator downloads, so the hash can match.

    Refusing here (rather than on the validator) tells the miner before they commit on chain.
    """
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise ModelRejected("not_found", f"{local_dir} is not a directory")
    files = model_files(local_dir)
    listing = [RepoFile(p.relative_to(local_dir).as_posix(), p.stat().st_size) for p in files]
    check_listing(listing, max_bytes=1 << 62)
    extra = [f.path for f in listing if not is_wanted(f.path)]
    if extra:
        raise ModelRejected(
            "forbidden_files",
            f"validators only download {', '.join(ALLOWED_SUFFIXES)} files; remove {', '.join(extra[:5])}",
        )
    return files


# ----------------------------------------------------------------------------- verified cache


def _read_marker(directory: Path) -> dict | None:
    try:
        return json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return None


def verified_directory_hash(directory: Path) -> str | None:
    """The content hash recorded when `directory` was verified, so callers never hash a model twice."""
    marker = _read_marker(Path(directory))
    value = marker.get("directory_hash") if marker else None
    return value if isinstance(value, str) and value else None


def _marker_matches(directory: Path, ref: ModelRef, hotkey: str) -> bool:
    """A cheap re-check of a verified directory: same hash, same hotkey, files still the same sizes."""
    marker = _read_marker(directory)
    if not marker or marker.get("secure_hash") != ref.secure_hash or marker.get("hotkey") != hotkey:
        return False
    sizes = {p.relative_to(directory).as_posix(): p.stat().st_size for p in model_files(directory)}
    return sizes == marker.get("sizes")


def _write_marker(directory: Path, ref: ModelRef, hotkey: str, dir_hash: str) -> None:
    sizes = {p.relative_to(directory).as_posix(): p.stat().st_size for p in model_files(directory)}
    data = {
        "ref": ref.encode(), "hotkey": hotkey, "secure_hash": ref.secure_hash,
        "directory_hash": dir_hash, "sizes": sizes, "verified_at": time.time(),
    }
    tmp = directory / f"{MARKER}.tmp"
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, directory / MARKER)


def model_cache_dir(cache_dir: Path, hotkey: str, commit: str) -> Path:
    if not _HOTKEY.fullmatch(hotkey):
        raise ValueError(f"hotkey {hotkey!r} is not a plain ss58 address")
    if not _COMMIT.fullmatch(commit):
        raise ValueError(f"commit {commit!r} is not a hex revision")
    return Path(cache_dir) / hotkey / commit


def fetch_verified(store: ModelStore, ref: ModelRef, hotkey: str, competition, cache_dir: Path) -> Path:
    """Download `ref` for `hotkey` (or reuse an already verified copy) and return its directory.

    Raises ModelRejected for a bad model (size, files, hash) and StoreError for store faults.
    """
    if ref.competition_id != competition.id:
        raise ModelRejected(
            "competition_mismatch", f"commitment names competition {ref.competition_id!r}, not {competition.id!r}"
        )
    final = model_cache_dir(cache_dir, hotkey, ref.commit)
    if final.is_dir() and _marker_matches(final, ref, hotkey):
        return final
    check_listing(store.list_files(ref.namespace, ref.name, ref.commit), competition.max_bytes)

    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = final.parent / f"{_PARTIAL_PREFIX}{ref.commit}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        scratch.mkdir()
        store.download(ref.namespace, ref.name, ref.commit, scratch, max_bytes=competition.max_bytes)
        check_downloaded(scratch, competition.max_bytes)
        dir_hash = directory_hash(scratch)
        if secure_hash(dir_hash, hotkey) != ref.secure_hash:
            raise ModelRejected(
                "hash_mismatch", f"content of {ref.short()} hashed with hotkey {hotkey} does not match the commitment"
            )
        _write_marker(scratch, ref, hotkey, dir_hash)
        if final.exists():
            shutil.rmtree(final)
        os.replace(scratch, final)
        return final
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


# ----------------------------------------------------------------------------- cleanup


def remove_unreferenced(
    cache_dir: Path, keep: set[Path], min_free_bytes: int | None = None, *, partial_max_age_s: float = 3600.0
) -> list[Path]:
    """Delete cached model directories not in `keep`; returns what was removed.

    With `min_free_bytes=None` every unreferenced directory goes. Otherwise the oldest go first,
    and only until the disk has `min_free_bytes` free, so a model that drops out of the metagraph
    for a round is not downloaded again when there is room to keep it. Scratch directories of
    interrupted downloads older than `partial_max_age_s` always go.
    """
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return []
    keep_resolved = {Path(k).resolve() for k in keep}
    removed: list[Path] = []
    candidates: list[Path] = []
    now = time.time()
    for hotkey_dir in sorted(p for p in cache_dir.iterdir() if p.is_dir()):
        for entry in sorted(p for p in hotkey_dir.iterdir() if p.is_dir()):
            if entry.name.startswith(_PARTIAL_PREFIX):
                if now - entry.stat().st_mtime > partial_max_age_s:
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry)
            elif entry.resolve() not in keep_resolved:
                candidates.append(entry)
    candidates.sort(key=lambda p: p.stat().st_mtime)
    for entry in candidates:
        if min_free_bytes is not None and shutil.disk_usage(cache_dir).free >= min_free_bytes:
            break
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    for hotkey_dir in [p for p in cache_dir.iterdir() if p.is_dir()]:
        if not any(hotkey_dir.iterdir()):
            hotkey_dir.rmdir()
    return removed
