"""The Hugging Face Hub as a model store, through the real `huggingface_hub` client.

Validator side: `list_files` reads the pinned revision's file sizes (`model_info(files_metadata=True)`)
so size and file rules apply before any download; `download` fetches only the allowed files one by
one with `hf_hub_download(local_dir=...)`, with a byte budget enforced while the bytes stream (a
repo can lie about its sizes), and re-checks what landed on disk. Per-file downloads rather than
`snapshot_download`: the listing we already checked is exactly what we fetch, the budget spans all
files, and `snapshot_download` would quietly return a stale local directory when the Hub is down.

Miner side: `upload` creates the repo private, commits exactly the files a validator will download
(and deletes stale ones), and returns the commit; `make_public` flips visibility afterwards.

Errors: 404 -> ModelRejected('not_found'), 401/403 -> ModelRejected('not_public') (validator
calls; for miner calls these are StoreError), 408/429/5xx, timeouts and broken connections are
retried `retries` times with backoff, then StoreError(transient=True).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, TypeVar

import httpx2
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    hf_hub_download,
)
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from subnet.hub.download import check_downloaded, check_listing, check_upload_dir
from subnet.hub.errors import ModelRejected
from subnet.hub.store import RepoFile, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_TIMEOUT_LOCK = threading.Lock()
_TIMEOUT_INSTALLED: float | None = None


def _install_client_timeout(timeout_s: float) -> None:
    """huggingface_hub's shared HTTP client has no timeout; give every call without its own one."""
    global _TIMEOUT_INSTALLED
    from huggingface_hub.utils import _http

    with _TIMEOUT_LOCK:
        if _TIMEOUT_INSTALLED is not None:
            return

        def factory() -> httpx2.Client:
            client = _http.default_client_factory()
            client.timeout = httpx2.Timeout(timeout_s)
            return client

        _http.set_client_factory(factory)
        _TIMEOUT_INSTALLED = timeout_s


class _TooLarge(Exception):
    """Raised from inside the download stream to stop it the moment the budget is spent."""


class _ByteBudget:
    """Counts streamed bytes across all files of one download and stops past `limit`.

    `hf_hub_download` reports each chunk to its progress-bar class; this class stands in for it.
    """

    def __init__(self, limit: int, on_bytes: Callable[[int], None] = lambda n: None) -> None:
        self.limit = limit
        self.done = 0  # bytes of files already complete
        self.current = 0  # bytes of the file in flight (reset when a download restarts)
        budget = self

        class Bar:
            def __init__(self, *args, **kwargs) -> None:
                budget.current = int(kwargs.get("initial") or 0)

            def __enter__(self):
                return self

            def __exit__(self, *exc) -> None:
                return None

            def update(self, n=1) -> None:
                budget.current += int(n or 0)
                on_bytes(int(n or 0))
                if budget.done + budget.current > budget.limit:
                    raise _TooLarge(f"download passed {budget.limit:,} bytes")

            def close(self) -> None:
                pass

            def refresh(self, *a, **k) -> None:
                pass

            def set_postfix_str(self, *a, **k) -> None:
                pass

        self.bar = Bar

    def file_done(self, size: int) -> None:
        self.done += size
        self.current = 0


def _status(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


class HuggingFaceStore:
    def __init__(
        self,
        token: str | None = None,
        endpoint: str | None = None,
        timeout_s: float = 60,
        retries: int = 3,
        backoff_s: float = 1.0,
    ) -> None:
        self.token = token
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.api = HfApi(endpoint=self.endpoint, token=token)
        _install_client_timeout(timeout_s)

    def __repr__(self) -> str:
        return f"HuggingFaceStore(endpoint={self.api.endpoint!r})"

    # ------------------------------------------------------------------ error mapping

    def _call(self, what: str, fn: Callable[[], T], *, rejecting: bool) -> T:
        """Run one Hub call with bounded retries, mapping its errors to ours.

        `rejecting`: the call reads a miner's model (validator side), so a missing or private repo
        rejects that model; otherwise (miner side) it is a plain store error.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except (ModelRejected, StoreError):
                raise
            except _TooLarge as e:
                raise ModelRejected("too_large", f"{what}: {e}") from None
            except Exception as e:  # noqa: BLE001 - classified below, re-raised as ours
                permanent = self._permanent(what, e, rejecting)
                if permanent is not None:
                    raise permanent from e
                if attempt > self.retries:
                    raise StoreError(f"{what}: gave up after {attempt} attempts: {e}", transient=True) from e
                wait = self.backoff_s * 2 ** (attempt - 1)
                log.warning("%s failed (%s); retry %d/%d in %.1fs", what, e, attempt, self.retries, wait)
                time.sleep(wait)

    def _permanent(self, what: str, e: Exception, rejecting: bool) -> Exception | None:
        """The error to raise at once, or None when `e` is transient and worth a retry."""
        status = _status(e)
        if isinstance(e, (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)):
            return None
        if isinstance(e, LocalEntryNotFoundError):  # the Hub could not be reached
            return None
        if isinstance(e, OSError) and "Consistency check failed" in str(e):
            # The body was complete but not the size the Hub announced: the repo misreports its files.
            message = f"{what}: served size differs from the announced size"
            return ModelRejected("size_mismatch", message) if rejecting else StoreError(message, transient=True)
        if status in _TRANSIENT_STATUS:
            return None
        if isinstance(e, HfHubHTTPError) or status is not None:
            if status in (401, 403) or isinstance(e, GatedRepoError):
                reason = "not_public"
            elif status == 404 or isinstance(e, (RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError)):
                reason = "not_found"
            else:
                return StoreError(f"{what}: HTTP {status}: {e}")
            return ModelRejected(reason, f"{what}: HTTP {status}") if rejecting else StoreError(f"{what}: HTTP {status}: {e}")
        return StoreError(f"{what}: {type(e).__name__}: {e}")

    # ------------------------------------------------------------------ validator side

    def _revision(self, namespace: str, name: str, commit: str) -> tuple[str, list[RepoFile]]:
        repo_id = f"{namespace}/{name}"
        info = self._call(
            f"model_info {repo_id}@{commit}",
            lambda: self.api.model_info(repo_id, revision=commit, files_metadata=True, timeout=self.timeout_s),
            rejecting=True,
        )
        sha = info.sha or ""
        if not sha.startswith(commit):
            # A branch or tag that happens to look like a hex prefix would let the miner change the model later.
            raise ModelRejected("not_found", f"{commit} is not a commit of {repo_id} (resolves to {sha or 'nothing'})")
        files = []
        for s in info.siblings or []:
            size = s.lfs.size if s.lfs is not None else s.size
            files.append(RepoFile(s.rfilename, size if size is not None else -1))
        return sha, files

    def list_files(self, namespace: str, name: str, commit: str) -> list[RepoFile]:
        return self._revision(namespace, name, commit)[1]

    def download(self, namespace: str, name: str, commit: str, dest: Path, *, max_bytes: int) -> Path:
        repo_id = f"{namespace}/{name}"
        sha, files = self._revision(namespace, name, commit)
        wanted = check_listing(files, max_bytes)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        from subnet.progress import WorkProgress

        with WorkProgress(f"download {repo_id}@{sha[:8]}", sum(f.size for f in wanted), "bytes") as progress:
            self._download_files(repo_id, sha, wanted, dest, _ByteBudget(max_bytes, progress.advance))
        shutil.rmtree(dest / ".cache", ignore_errors=True)
        check_downloaded(dest, max_bytes)
        return dest

    def _download_files(self, repo_id: str, sha: str, wanted: list[RepoFile], dest: Path, budget: _ByteBudget) -> None:
        for f in wanted:
            path = self._call(
                f"download {repo_id}@{sha[:8]}/{f.path}",
                lambda f=f: hf_hub_download(
                    repo_id,
                    f.path,
                    revision=sha,
                    local_dir=dest,
                    cache_dir=dest / ".cache" / "hub",  # never pick up files from a shared cache
                    endpoint=self.endpoint,
                    token=self.token,
                    etag_timeout=self.timeout_s,
                    tqdm_class=budget.bar,
                ),
                rejecting=True,
            )
            size = Path(path).stat().st_size
            if size != f.size:
                raise ModelRejected("size_mismatch", f"{f.path} is {size:,} bytes, the listing said {f.size:,}")
            budget.file_done(size)

    # ------------------------------------------------------------------ miner side

    def upload(self, local_dir: Path, namespace: str, name: str, *, private: bool = True) -> str:
        local_dir = Path(local_dir)
        files = check_upload_dir(local_dir)
        repo_id = f"{namespace}/{name}"
        self._call(
            f"create_repo {repo_id}",
            lambda: self.api.create_repo(repo_id, private=private, exist_ok=True),
            rejecting=False,
        )
        existing = self._call(
            f"model_info {repo_id}",
            lambda: self.api.model_info(repo_id, timeout=self.timeout_s),
            rejecting=False,
        )
        new_paths = {p.relative_to(local_dir).as_posix() for p in files}
        stale = [
            s.rfilename for s in existing.siblings or []
            if s.rfilename not in new_paths and s.rfilename != ".gitattributes"
        ]

        def commit():
            operations = [
                CommitOperationAdd(path_in_repo=p.relative_to(local_dir).as_posix(), path_or_fileobj=str(p))
                for p in files
            ] + [CommitOperationDelete(path_in_repo=p) for p in stale]
            return self.api.create_commit(repo_id, operations=operations, commit_message="Upload model")

        info = self._call(f"commit to {repo_id}", commit, rejecting=False)
        return info.oid

    def make_public(self, namespace: str, name: str) -> None:
        repo_id = f"{namespace}/{name}"
        self._call(
            f"make {repo_id} public",
            lambda: self.api.update_repo_settings(repo_id, private=False),
            rejecting=False,
        )
