"""Fetching a miner's model safely, and the file rules every store shares.

The rules live here, once: which files a repo may hold, which ones a validator downloads, and
how big a revision may be. Both stores (`LocalStore`, `HuggingFaceStore`) call them, so the Hub
and devnet reject the same models for the same reasons.

`fetch_verified` is the validator's one way in: re-verify a cached copy (`subnet.hub.cache`) or
list the pinned revision, check its size, file count and names before any byte is downloaded,
check free disk, download into a scratch directory, bind the content hash to the miner's hotkey,
and only then move the directory into the per-hotkey cache with a marker of per-file hashes.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from subnet.hub import cache as _cache
from subnet.hub.cache import (
    PARTIAL_PREFIX,
    hash_files,
    model_cache_dir,
    verify_cached,
    write_marker,
)
from subnet.hub.errors import ModelRejected
from subnet.hub.hashing import model_files, secure_hash
from subnet.hub.model_ref import ModelRef
from subnet.hub.store import ALLOWED_SUFFIXES, ModelStore, RepoFile

# A repo holding any of these is refused outright: pickles run code when loaded, and code files
# only make sense with trust_remote_code, which we never set.
FORBIDDEN_SUFFIXES = (
    ".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz",
    ".py", ".pyc", ".pyo", ".so", ".dll", ".dylib", ".exe", ".sh",
)
# A model is a config, a few weight shards and tokenizer files. Listing more files than this is
# refused before any download (each file is one request, and each one costs time and inodes).
MAX_REPO_FILES = 256


class DiskFull(OSError):
    """Our disk has no room for a download: the validator's problem, never the miner's."""

    def __init__(self, message: str, free: int | None = None, needed: int | None = None) -> None:
        super().__init__(errno.ENOSPC, message)
        self.free, self.needed = free, needed


class FetchDeadline(TimeoutError):
    """A model's fetch-and-check ran past its deadline."""


# ----------------------------------------------------------------------------- shared file rules


def _suffix(path: str) -> str:
    return PurePosixPath(path).suffix.lower()


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # e.g. a non-UTF-8 file name, decoded with surrogate escapes
        return False
    return True


def is_safe_path(path: str) -> bool:
    """A relative POSIX path in UTF-8 with no '..', no absolute root and no hidden component."""
    p = PurePosixPath(path)
    return bool(path) and _utf8(path) and not p.is_absolute() and "\\" not in path and all(
        part not in ("", ".", "..") and not part.startswith(".") for part in p.parts
    )


def check_tree(directory: Path) -> None:
    """Refuse a directory holding symlinks, special files or non-UTF-8 names: the Hub can hold none of them.

    A symlink in a local store could point anywhere on the validator's disk (/etc/passwd), and a
    name that is not UTF-8 cannot be stored in the state, shown or hashed the same way everywhere.
    """
    directory = Path(directory)
    for root, dirs, files in os.walk(directory, followlinks=False):
        for name in dirs + files:
            path = Path(root) / name
            rel = path.relative_to(directory).as_posix()
            if not _utf8(rel):
                raise ModelRejected("bad_listing", f"file name {ascii(rel)[:120]} is not UTF-8")
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise ModelRejected("forbidden_files", f"{rel} is a symbolic link")
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise ModelRejected("forbidden_files", f"{rel} is not a regular file")


def is_wanted(path: str) -> bool:
    """Whether a validator downloads this repo file (hidden files such as .gitattributes are skipped)."""
    return is_safe_path(path) and _suffix(path) in ALLOWED_SUFFIXES


def local_listing(directory: Path) -> list[RepoFile]:
    """A directory's files as a store lists them, after `check_tree` (so no symlink is ever followed)."""
    directory = Path(directory)
    check_tree(directory)
    return [RepoFile(p.relative_to(directory).as_posix(), p.stat().st_size) for p in model_files(directory)]


def check_listing(files: Iterable[RepoFile], max_bytes: int) -> list[RepoFile]:
    """Apply the repo rules to a revision's listing; return the files to download.

    Refuses, before any download: more than MAX_REPO_FILES files ('too_many_files'), names
    that are not UTF-8 ('bad_listing'), pickles or code anywhere in the repo ('forbidden_files'),
    path tricks ('forbidden_files'), no safetensors weights ('no_safetensors'), and a revision
    whose total size (every file, as the store reports it) exceeds `max_bytes` ('too_large').
    """
    files = list(files)
    if len(files) > MAX_REPO_FILES:
        raise ModelRejected("too_many_files", f"revision lists {len(files):,} files, the limit is {MAX_REPO_FILES}")
    undecodable = [ascii(f.path)[:120] for f in files if not isinstance(f.path, str) or not _utf8(f.path)]
    if undecodable:
        raise ModelRejected("bad_listing", f"file names are not UTF-8: {', '.join(undecodable[:3])}")
    forbidden = sorted(f.path for f in files if _suffix(f.path) in FORBIDDEN_SUFFIXES)
    if forbidden:
        raise ModelRejected("forbidden_files", f"repo holds pickle or code files: {', '.join(forbidden[:5])}")
    unsafe = sorted(f.path for f in files if ".." in PurePosixPath(f.path).parts or f.path.startswith("/"))
    if unsafe:
        raise ModelRejected("forbidden_files", f"repo holds files with unsafe paths: {', '.join(unsafe[:5])}")
    negative = [f.path for f in files if not isinstance(f.size, int) or isinstance(f.size, bool) or f.size < 0]
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
    check_tree(directory)
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


# ----------------------------------------------------------------------------- fetching


def ensure_free_disk(directory: Path, needed: int, floor: int) -> None:
    """Refuse a download that would leave less than `floor` bytes free (checked before each one)."""
    free = _cache.disk_free(directory)
    if free - needed < floor:
        raise DiskFull(f"{free:,} bytes free in {directory}; a download of {needed:,} bytes would pass "
                       f"the floor of {floor:,}", free, needed)


def _check_deadline(deadline: float | None, step: str) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise FetchDeadline(f"fetch-and-check deadline passed {step}")


def fetch_verified(store: ModelStore, ref: ModelRef, hotkey: str, competition, cache_dir: Path, *,
                   min_free_bytes: int = 0, deadline: float | None = None,
                   make_room: Callable[[int], object] | None = None) -> Path:
    """Download `ref` for `hotkey` (or reuse an intact verified copy) and return its directory.

    Raises ModelRejected for a bad model (size, files, hash), StoreError for store faults,
    DiskFull when our disk is short (after `make_room(bytes needed)`, which may evict models nobody
    needs), and FetchDeadline past `deadline` (time.monotonic()).
    A cached copy that no longer hashes as verified is deleted and fetched again.
    """
    if ref.competition_id != competition.id:
        raise ModelRejected(
            "competition_mismatch", f"commitment names competition {ref.competition_id!r}, not {competition.id!r}"
        )
    final = model_cache_dir(cache_dir, hotkey, ref.commit)
    if final.is_dir():
        if verify_cached(final, ref, hotkey) is not None:
            return final
        shutil.rmtree(final)  # damaged, incomplete or stale: our cache's fault, so fetch again
    wanted = check_listing(store.list_files(ref.namespace, ref.name, ref.commit), competition.max_bytes)
    _check_deadline(deadline, "after listing")

    needed = sum(f.size for f in wanted)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    if make_room is not None and _cache.disk_free(Path(cache_dir)) - needed < min_free_bytes:
        make_room(needed)  # before our directory exists: eviction removes empty hotkey directories
    final.parent.mkdir(parents=True, exist_ok=True)
    ensure_free_disk(final.parent, needed, min_free_bytes)
    scratch = final.parent / f"{PARTIAL_PREFIX}{ref.commit}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        scratch.mkdir()
        store.download(ref.namespace, ref.name, ref.commit, scratch, max_bytes=competition.max_bytes)
        check_downloaded(scratch, competition.max_bytes)
        _check_deadline(deadline, "after downloading")
        entries, dir_hash = hash_files(scratch)
        if secure_hash(dir_hash, hotkey) != ref.secure_hash:
            raise ModelRejected(
                "hash_mismatch", f"content of {ref.short()} hashed with hotkey {hotkey} does not match the commitment"
            )
        write_marker(scratch, ref, hotkey, entries, dir_hash)
        if final.exists():
            shutil.rmtree(final)
        os.replace(scratch, final)
        return final
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
