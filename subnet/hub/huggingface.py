"""The Hugging Face Hub as a model store, through the real `huggingface_hub` client.

Validator side: `list_files` reads the pinned revision's file sizes (`model_info(files_metadata=True)`)
so size and file rules apply before any download; `download` fetches only the allowed files one by
one with `hf_hub_download(local_dir=...)`, with a byte budget enforced while the bytes stream (a
repo can lie about its sizes), and re-checks what landed on disk. Per-file downloads rather than
`snapshot_download`: the listing we already checked is exactly what we fetch, the budget spans all
files, and `snapshot_download` would quietly return a stale local directory when the Hub is down.

Miner side: `upload` creates the repo private, commits exactly the files a validator will download
(and deletes stale ones), and returns the commit; `make_public` flips visibility afterwards. The
Hub's `preupload` answers `lfs` for `*.safetensors` (and any file over 10 MB), so weights go
through the LFS batch API (`objects/batch`, a PUT of the bytes, `verify`) and are committed as
`lfsFile` entries; small JSON files go inline.

Xet is off (the client's own `HF_HUB_DISABLE_XET` setting), for miners and validators alike.
With hf_xet installed, huggingface_hub 2.x uploads through xet unconditionally and downloads
through it whenever the Hub's HEAD answer carries `X-Xet-Hash`. On that path hf_xet reports
progress on its own thread, through two bars (bytes counted twice), swallows exceptions raised in
the callback (so a byte budget cannot stop a lying repo) and ignores the HTTP client's timeouts.
Without xet the Hub still serves every file over plain HTTP (the resolve redirect) and accepts LFS
uploads, the path below that we test and whose transfers we can bound. `ByteBudget` still counts
each byte once and aborts an xet transfer should one ever run.

Errors: 404 -> ModelRejected('not_found'), 401/403 -> ModelRejected('not_public'), a repo id the
Hub refuses -> ModelRejected('bad_ref') (validator calls; for miner calls these are StoreError).
429 honours `RateLimit` / `Retry-After`: a short wait is waited once, a longer one becomes
StoreError(transient=True, retry_after_s=...) so the model is deferred to a later round. 408/5xx,
timeouts, broken connections and hf_xet's failures are retried `retries` times with backoff, then
StoreError(transient=True).
"""

from __future__ import annotations

import logging
import shutil
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
    HFValidationError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from subnet.hub.byte_budget import ByteBudget, TooLarge
from subnet.hub.download import check_downloaded, check_listing, check_upload_dir
from subnet.hub.errors import ModelRejected
from subnet.hub.hf_client import (
    configure_client,
    is_xet_failure,
    rate_limited_response,
    retry_after_s,
    status_of,
    surfacing_rate_limits,
)
from subnet.hub.model_ref import repo_id_problem
from subnet.hub.store import RepoFile, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


class HuggingFaceStore:
    def __init__(
        self,
        token: str | None = None,
        endpoint: str | None = None,
        timeout_s: float = 60,
        retries: int = 3,
        backoff_s: float = 1.0,
        max_rate_limit_wait_s: float = 10.0,
    ) -> None:
        self.token = token
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        # A rate limit that clears within this is waited out in place; a longer one defers the model.
        self.max_rate_limit_wait_s = max_rate_limit_wait_s
        self.api = HfApi(endpoint=self.endpoint, token=token)
        configure_client(timeout_s)

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
                with surfacing_rate_limits():
                    return fn()
            except (ModelRejected, StoreError):
                raise
            except TooLarge as e:
                raise ModelRejected("too_large", f"{what}: {e}") from None
            except Exception as e:  # noqa: BLE001 - classified below, re-raised as ours
                permanent = self._permanent(what, e, rejecting)
                if permanent is not None:
                    raise permanent from e
                wait = self.backoff_s * 2 ** (attempt - 1)
                limited = rate_limited_response(e)
                if limited is not None:
                    asked = retry_after_s(limited.headers)
                    if asked is not None and (asked > self.max_rate_limit_wait_s or attempt > self.retries):
                        raise StoreError(
                            f"{what}: rate limited by the Hub for {asked:.0f}s", transient=True, retry_after_s=asked
                        ) from e
                    wait = asked if asked is not None else wait
                if attempt > self.retries:
                    raise StoreError(f"{what}: gave up after {attempt} attempts: {e}", transient=True) from e
                log.warning("%s failed (%s); retry %d/%d in %.1fs", what, e, attempt, self.retries, wait)
                time.sleep(wait)

    def _permanent(self, what: str, e: Exception, rejecting: bool) -> Exception | None:
        """The error to raise at once, or None when `e` is transient and worth a retry."""
        status = status_of(e)
        if isinstance(e, (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)):
            return None
        if isinstance(e, LocalEntryNotFoundError):  # the Hub could not be reached
            return None
        if is_xet_failure(e):
            return None
        if isinstance(e, HFValidationError):  # the client refused the repo id before asking the Hub
            message = f"{what}: {e}"
            return ModelRejected("bad_ref", message) if rejecting else StoreError(message)
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
            if rejecting:
                return ModelRejected(reason, f"{what}: HTTP {status}")
            if status in (401, 403):
                return StoreError(
                    f"{what}: HTTP {status}: the token (HF_TOKEN) cannot write here; it needs write access to "
                    "the namespace's repos (a 'write' token, or fine-grained 'Write access to contents/settings')"
                )
            return StoreError(f"{what}: HTTP {status}: {e}")
        return StoreError(f"{what}: {type(e).__name__}: {e}")

    # ------------------------------------------------------------------ validator side

    def _revision(self, namespace: str, name: str, commit: str) -> tuple[str, list[RepoFile]]:
        repo_id = f"{namespace}/{name}"
        problem = repo_id_problem(repo_id)
        if problem:
            raise ModelRejected("bad_ref", f"the Hub refuses repo id {repo_id!r}: {problem}")
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
            self._download_files(repo_id, sha, wanted, dest, ByteBudget(max_bytes, progress.advance))
        shutil.rmtree(dest / ".cache", ignore_errors=True)
        check_downloaded(dest, max_bytes)
        return dest

    def _download_files(self, repo_id: str, sha: str, wanted: list[RepoFile], dest: Path, budget: ByteBudget) -> None:
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
            if budget.exceeded:  # a callback on a library thread may have had its exception swallowed
                raise ModelRejected("too_large", f"{repo_id}@{sha[:8]}/{f.path}: download passed {budget.limit:,} bytes")
            size = Path(path).stat().st_size
            if size != f.size:
                raise ModelRejected("size_mismatch", f"{f.path} is {size:,} bytes, the listing said {f.size:,}")
            budget.file_done(size)

    # ------------------------------------------------------------------ miner side

    def upload(self, local_dir: Path, namespace: str, name: str, *, private: bool = True) -> str:
        local_dir = Path(local_dir)
        files = check_upload_dir(local_dir)
        repo_id = f"{namespace}/{name}"
        problem = repo_id_problem(repo_id)
        if problem:
            raise StoreError(f"the Hub refuses repo id {repo_id!r}: {problem}")
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
