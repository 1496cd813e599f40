"""FineWeb's own parquet files on the Hugging Face Hub, read with HTTP range requests: no datasets-server.

The listing comes from the Hub's tree API at one commit (`huggingface_hub.HfApi.list_repo_tree`)
and is cached per commit; footers and row groups are read through `huggingface_hub.HfFileSystem`
(range GETs of the resolve endpoint, with its retries that honour 429 Retry-After) and decoded by
pyarrow. With `revision` set to a commit sha every validator chooses from the very same files
whatever the Hub gains meanwhile; with a branch name the branch is resolved every round and the
commit recorded, as the datasets-server source records X-Revision.
"""

from __future__ import annotations

import re
import threading
from typing import IO

from subnet.data.parquet import ParquetFileInfo, ParquetPages

DEFAULT_REPO = "HuggingFaceFW/fineweb"
DUMP_FILE = re.compile(r"^data/CC-MAIN-\d{4}-\d{2}/[^/]+\.parquet$")  # the dumps; sample/* are subsets of them
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


class HubParquetSource(ParquetPages):
    """A DocumentSource over `data/CC-MAIN-*/*.parquet` of a Hub dataset repo at one revision."""

    name = "fineweb-parquet"

    def __init__(self, repo: str = DEFAULT_REPO, revision: str = "main", endpoint: str | None = None,
                 token: str | bool | None = None, workers: int = 8, deadline_s: float = 600.0,
                 extra_pages: int = 0, block_size: int = 1 << 20):
        super().__init__(workers=workers, deadline_s=deadline_s, extra_pages=extra_pages)
        from huggingface_hub import HfApi, HfFileSystem

        self.repo, self.revision = repo, revision
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.api = HfApi(endpoint=self.endpoint, token=token)
        # One file system shared by the reading threads (not fsspec's per-thread instances): its
        # repo/revision cache is then filled once.
        self.fs = HfFileSystem(endpoint=self.endpoint, token=token, skip_instance_cache=True)
        self.block_size = block_size
        self._listings: dict[str, list[ParquetFileInfo]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HubParquetSource(repo={self.repo!r}, revision={self.revision!r}, endpoint={self.endpoint!r})"

    def describe(self) -> str:
        return f"{self.name}:{self.repo}"

    def snapshot(self) -> tuple[str, list[ParquetFileInfo]]:
        commit = self.revision if COMMIT_SHA.match(self.revision) else self._resolve(self.revision)
        with self._lock:
            files = self._listings.get(commit)
        if files is None:
            entries = self.api.list_repo_tree(self.repo, path_in_repo="data", recursive=True, revision=commit,
                                              repo_type="dataset")
            files = sorted((ParquetFileInfo(e.path, int(e.size), getattr(e, "blob_id", "") or "")
                            for e in entries if getattr(e, "size", None) and DUMP_FILE.match(e.path)),
                           key=lambda f: f.path)
            if not files:
                raise ValueError(f"{self.repo}@{commit} has no data/CC-MAIN-YYYY-WW/*.parquet files")
            with self._lock:
                self._listings[commit] = files
        self._commit = commit
        return commit, files

    def _resolve(self, branch: str) -> str:
        info = self.api.repo_info(self.repo, revision=branch, repo_type="dataset")
        if not isinstance(info.sha, str) or not COMMIT_SHA.match(info.sha):
            raise ValueError(f"{self.repo}@{branch} resolved to {info.sha!r}, not a commit sha")
        return info.sha

    def open(self, file: ParquetFileInfo) -> IO[bytes]:
        # The size is known from the listing, so opening asks the Hub nothing; "none" caching reads
        # exactly the ranges pyarrow asks for (footer, then the row group's coalesced text chunk).
        path = f"datasets/{self.repo}@{self._commit}/{file.path}"
        f = self.fs.open(path, "rb", size=file.size, block_size=self.block_size, cache_type="none")
        f.details = {"name": path, "size": file.size, "type": "file"}  # hashing the file would ask the Hub for it
        return f
