"""A model store in a directory: the Hub's behaviour for devnet and tests, with no network.

Layout: `root/<namespace>/<name>/repo.json` (visibility) and `root/<namespace>/<name>/<commit>/`
(the files of one revision). The commit is derived from the content (the first 40 hex digits of
sha256 over the directory hash), so uploading the same model twice gives the same revision, and
revisions are immutable like git commits. Repos start private, as miners upload them, and only a
public repo can be listed or downloaded, so copying before the chain commitment is impossible
here too. Writes go through a temporary directory and a rename, so a reader in another process
(the devnet validator) never sees half a revision.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path

from subnet.hub.download import (
    check_downloaded,
    check_listing,
    check_upload_dir,
    local_listing,
)
from subnet.hub.errors import ModelRejected
from subnet.hub.hashing import directory_hash
from subnet.hub.store import RepoFile, StoreError

_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")


def content_commit(local_dir: Path) -> str:
    """The revision id of a model directory: 40 hex digits, like a git commit."""
    return hashlib.sha256(directory_hash(local_dir).encode()).hexdigest()[:40]


class LocalStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # ------------------------------------------------------------------ paths

    def _repo_dir(self, namespace: str, name: str) -> Path:
        for label, part in (("namespace", namespace), ("name", name)):
            if not _PART.fullmatch(part) or ".." in part:
                raise ValueError(f"{label} {part!r} is not a valid repo part")
        return self.root / namespace / name

    def _read_settings(self, repo: Path) -> dict | None:
        try:
            return json.loads((repo / "repo.json").read_text())
        except FileNotFoundError:
            return None
        except OSError as e:  # permissions, a flaky mount: the store's fault, so worth retrying
            raise StoreError(f"unreadable repo settings in {repo}: {e}", transient=True) from None
        except ValueError as e:
            raise StoreError(f"unreadable repo settings in {repo}: {e}") from None

    def _write_settings(self, repo: Path, settings: dict) -> None:
        tmp = repo / f".repo.json.{uuid.uuid4().hex[:8]}"
        tmp.write_text(json.dumps(settings, sort_keys=True))
        os.replace(tmp, repo / "repo.json")

    def _resolve(self, namespace: str, name: str, commit: str) -> Path:
        """The directory of a public revision, or ModelRejected naming why not."""
        repo = self._repo_dir(namespace, name)
        settings = self._read_settings(repo)
        if settings is None:
            raise ModelRejected("not_found", f"repo {namespace}/{name} does not exist")
        if settings.get("private", True):
            raise ModelRejected("not_public", f"repo {namespace}/{name} is private")
        if not _COMMIT.fullmatch(commit):
            raise ModelRejected("not_found", f"revision {commit!r} is not a commit")
        matches = [p for p in repo.iterdir() if p.is_dir() and p.name.startswith(commit)] if repo.is_dir() else []
        if len(matches) != 1:
            why = "does not exist" if not matches else "is ambiguous"
            raise ModelRejected("not_found", f"revision {commit} of {namespace}/{name} {why}")
        return matches[0]

    # ------------------------------------------------------------------ ModelStore

    def upload(self, local_dir: Path, namespace: str, name: str, *, private: bool = True) -> str:
        local_dir = Path(local_dir)
        files = check_upload_dir(local_dir)
        repo = self._repo_dir(namespace, name)
        repo.mkdir(parents=True, exist_ok=True)
        if self._read_settings(repo) is None:
            self._write_settings(repo, {"private": private})
        commit = content_commit(local_dir)
        target = repo / commit
        if target.is_dir():
            return commit
        scratch = repo / f".upload-{uuid.uuid4().hex}"
        try:
            for src in files:
                dst = scratch / src.relative_to(local_dir)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
            if directory_hash(scratch) != directory_hash(local_dir):
                raise StoreError(f"{local_dir} changed while it was being uploaded", transient=True)
            try:
                os.rename(scratch, target)
            except OSError:
                if not target.is_dir():  # a concurrent upload of the same content won the race
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return commit

    def make_public(self, namespace: str, name: str) -> None:
        repo = self._repo_dir(namespace, name)
        settings = self._read_settings(repo)
        if settings is None:
            raise StoreError(f"repo {namespace}/{name} does not exist")
        self._write_settings(repo, {**settings, "private": False})

    def _listing(self, namespace: str, name: str, commit: str) -> tuple[Path, list[RepoFile]]:
        """A revision's directory and files, refused like the Hub would refuse them.

        The Hub can hold neither symlinks nor names that are not UTF-8, so neither may a local
        store: a symlink would copy any file of the validator's disk into the cache. An OS error
        reading the store (permissions, a flaky mount) is a store outage, retried later.
        """
        try:
            revision = self._resolve(namespace, name, commit)
            return revision, local_listing(revision)
        except OSError as e:
            raise StoreError(f"cannot read {namespace}/{name}@{commit[:12]} in {self.root}: {e}", transient=True) from None

    def list_files(self, namespace: str, name: str, commit: str) -> list[RepoFile]:
        return self._listing(namespace, name, commit)[1]

    def download(self, namespace: str, name: str, commit: str, dest: Path, *, max_bytes: int) -> Path:
        revision, listing = self._listing(namespace, name, commit)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        copied = 0
        for f in check_listing(listing, max_bytes):
            src = revision / f.path
            copied += src.stat().st_size
            if copied > max_bytes:  # a file grew since it was listed
                raise ModelRejected("too_large", f"revision grew past {max_bytes:,} bytes while downloading")
            dst = dest / f.path
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        check_downloaded(dest, max_bytes)
        return dest
