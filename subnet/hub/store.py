"""The model store protocol: where miners upload and validators download models.

Implementations: `subnet.hub.huggingface.HuggingFaceStore` (the Hub) and
`subnet.hub.local.LocalStore` (a directory, for devnet and tests). Both pin revisions by commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

# Files a validator ever downloads. Anything else (pickles, code, archives) is refused.
ALLOWED_SUFFIXES = (".safetensors", ".json", ".txt", ".model", ".tiktoken", ".md")


class StoreError(RuntimeError):
    """The store could not do what was asked. `transient` errors are worth retrying later.

    `retry_after_s`: how long the store asked us to wait (a rate limit), so callers defer the model
    to a round after that instead of hammering the store; None when it said nothing.
    """

    def __init__(self, message: str, *, transient: bool = False, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class RepoFile:
    path: str
    size: int


@runtime_checkable
class ModelStore(Protocol):
    def upload(self, local_dir: Path, namespace: str, name: str, *, private: bool = True) -> str:
        """Upload a model directory; returns the commit (revision) that holds it."""
        ...

    def make_public(self, namespace: str, name: str) -> None: ...

    def list_files(self, namespace: str, name: str, commit: str) -> list[RepoFile]:
        """The files of a pinned revision with their sizes, read before any download."""
        ...

    def download(self, namespace: str, name: str, commit: str, dest: Path, *, max_bytes: int) -> Path:
        """Materialise a pinned revision's allowed files into `dest`; refuses repos over `max_bytes`."""
        ...
