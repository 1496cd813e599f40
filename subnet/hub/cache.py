"""The validator's cache of verified models: one directory per (hotkey, commit), and its marker.

A cached copy is only as good as the disk under it: a file can be truncated, garbled or deleted
while the validator runs or while it is stopped. Scoring a damaged copy would blame the miner for
our disk, so a copy is re-verified before every use, cheaply: the marker records each file's
size, mtime and sha256; a file whose size or mtime changed is hashed again, and every file is
re-hashed once `rehash_after_s` has passed since the last full check (same-size damage that kept
its mtime). A copy that fails is deleted and fetched again from the store.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

from subnet.hub.hashing import combine_file_hashes, file_hash, model_files, secure_hash
from subnet.hub.model_ref import ModelRef

MARKER = ".verified"  # hidden, so directory_hash ignores it
PARTIAL_PREFIX = ".partial-"
REHASH_AFTER_S = 24 * 3600.0
_HOTKEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
_PARTIAL_OWNER = re.compile(rf"^{re.escape(PARTIAL_PREFIX)}[0-9a-f]+-(\d+)-[0-9a-f]+$")


def disk_free(path: Path) -> int:
    """Free bytes on the disk holding `path`: the one measure every free-disk decision uses."""
    return shutil.disk_usage(path).free


def model_cache_dir(cache_dir: Path, hotkey: str, commit: str) -> Path:
    if not _HOTKEY.fullmatch(hotkey):
        raise ValueError(f"hotkey {hotkey!r} is not a plain ss58 address")
    if not _COMMIT.fullmatch(commit):
        raise ValueError(f"commit {commit!r} is not a hex revision")
    return Path(cache_dir) / hotkey / commit


def _read_marker(directory: Path) -> dict | None:
    try:
        marker = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def verified_directory_hash(directory: Path) -> str | None:
    """The content hash recorded when `directory` was verified, so callers never hash a model twice."""
    marker = _read_marker(Path(directory))
    value = marker.get("directory_hash") if marker else None
    return value if isinstance(value, str) and value else None


def _file_entry(path: Path, sha: str) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}


def write_marker(directory: Path, ref: ModelRef, hotkey: str, files: dict[str, dict], dir_hash: str,
                 rehashed_at: float | None = None) -> None:
    now = time.time()
    data = {
        "ref": ref.encode(), "hotkey": hotkey, "secure_hash": ref.secure_hash, "directory_hash": dir_hash,
        "files": files, "verified_at": now, "rehashed_at": now if rehashed_at is None else rehashed_at,
    }
    tmp = directory / f"{MARKER}.tmp"
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, directory / MARKER)


def hash_files(directory: Path) -> tuple[dict[str, dict], str]:
    """Every model file's marker entry, and the directory hash they make."""
    entries = {p.relative_to(directory).as_posix(): _file_entry(p, file_hash(p)) for p in model_files(directory)}
    return entries, combine_file_hashes([e["sha256"] for e in entries.values()])


def verify_cached(directory: Path, ref: ModelRef, hotkey: str, *, rehash_after_s: float = REHASH_AFTER_S) -> str | None:
    """The directory hash if the cached copy still holds what was verified for (ref, hotkey), else None."""
    directory = Path(directory)
    marker = _read_marker(directory)
    if not marker or marker.get("secure_hash") != ref.secure_hash or marker.get("hotkey") != hotkey:
        return None
    recorded = marker.get("files")
    if not isinstance(recorded, dict):
        return None  # a marker from before per-file hashes: verify by fetching again
    paths = model_files(directory)
    if sorted(recorded) != [p.relative_to(directory).as_posix() for p in paths]:
        return None
    now = time.time()
    rehashed_at = marker.get("rehashed_at")
    full = not isinstance(rehashed_at, (int, float)) or now - rehashed_at >= rehash_after_s
    changed = full
    entries: dict[str, dict] = {}
    for path in paths:
        name = path.relative_to(directory).as_posix()
        old = recorded[name]
        if not isinstance(old, dict):
            return None
        st = path.stat()
        if full or st.st_size != old.get("size") or st.st_mtime_ns != old.get("mtime_ns"):
            entry = _file_entry(path, file_hash(path))
            if entry["sha256"] != old.get("sha256"):
                return None
            changed = True
            entries[name] = entry
        else:
            entries[name] = old
    dir_hash = combine_file_hashes([e["sha256"] for e in entries.values()])
    if dir_hash != marker.get("directory_hash") or secure_hash(dir_hash, hotkey) != ref.secure_hash:
        return None
    if changed:
        write_marker(directory, ref, hotkey, entries, dir_hash, now if full else rehashed_at)
    return dir_hash


def cached_copy_intact(directory: Path) -> bool:
    """Whether a cached copy still holds what its marker says was verified (False when it is gone).

    Asked after a model failed to score: a copy that vanished or changed under the scorer makes the
    failure ours (our disk, our cache), not the miner's.
    """
    from subnet.hub.model_ref import ModelRefError

    marker = _read_marker(Path(directory))
    if not marker or not isinstance(marker.get("ref"), str) or not isinstance(marker.get("hotkey"), str):
        return False
    try:
        return verify_cached(Path(directory), ModelRef.parse(marker["ref"]), marker["hotkey"]) is not None
    except (OSError, ValueError, ModelRefError):
        return False


def stale_partial(entry: Path, max_age_s: float) -> bool:
    """A download's scratch directory nobody will finish: its process is gone, or (no owner in its
    name) nothing touched it for `max_age_s`. A live process's download, ours included, is kept."""
    from subnet.pids import alive

    owner = _PARTIAL_OWNER.match(entry.name)
    if owner:
        return not alive(int(owner.group(1)))
    try:
        return time.time() - entry.stat().st_mtime > max_age_s
    except OSError:
        return False


def remove_dead_partials(cache_dir: Path, max_age_s: float = 3600.0) -> list[Path]:
    """Delete the scratch directories of downloads whose process died (a kill mid-download)."""
    cache_dir = Path(cache_dir)
    removed: list[Path] = []
    if not cache_dir.is_dir():
        return removed
    for hotkey_dir in sorted(p for p in cache_dir.iterdir() if p.is_dir()):
        for entry in sorted(p for p in hotkey_dir.iterdir() if p.name.startswith(PARTIAL_PREFIX)):
            if stale_partial(entry, max_age_s):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def remove_unreferenced(
    cache_dir: Path, keep: set[Path], min_free_bytes: int | None = None, *, partial_max_age_s: float = 3600.0
) -> list[Path]:
    """Delete cached model directories not in `keep`; returns what was removed.

    With `min_free_bytes=None` every unreferenced directory goes. Otherwise the oldest go first,
    and only until the disk has `min_free_bytes` free, so a model that drops out of the metagraph
    for a round is not downloaded again when there is room to keep it. Scratch directories of
    downloads whose process died always go (`remove_dead_partials`).
    """
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return []
    keep_resolved = {Path(k).resolve() for k in keep}
    removed: list[Path] = remove_dead_partials(cache_dir, partial_max_age_s)
    candidates: list[Path] = []
    for hotkey_dir in sorted(p for p in cache_dir.iterdir() if p.is_dir()):
        for entry in sorted(p for p in hotkey_dir.iterdir() if p.is_dir()):
            if entry.name.startswith(PARTIAL_PREFIX):
                continue
            if entry.resolve() not in keep_resolved:
                candidates.append(entry)
    candidates.sort(key=lambda p: p.stat().st_mtime)
    for entry in candidates:
        if min_free_bytes is not None and disk_free(cache_dir) >= min_free_bytes:
            break
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    for hotkey_dir in [p for p in cache_dir.iterdir() if p.is_dir()]:
        if not any(hotkey_dir.iterdir()):
            hotkey_dir.rmdir()
    return removed
