"""The values that flow from a data source to the evaluation engine."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Document:
    id: str  # stable id: "<page id>/<row index>" for sampled pages
    text: str


@dataclass(frozen=True)
class RoundData:
    """A round's raw documents and the record that lets two validators compare what they scored.

    The identity fields (source, revision, configs, page ids) say which data the seed chose; two
    validators that record the same identity and digest scored the same documents, and two that
    do not can see why (another dataset revision, another list of dumps, a page that failed).
    """

    seed: str  # hex block hash the pages were chosen from
    page_ids: tuple[str, ...]  # pages that were fetched, in sampling order
    documents: tuple[Document, ...]  # deduplicated by content, in sampling order
    failed_pages: tuple[str, ...] = ()  # pages given up on after bounded retries, with reasons
    digest: str = ""  # sha256 over the documents' texts in order
    source: str = ""  # which source and dataset, e.g. "fineweb-rows:HuggingFaceFW/fineweb"
    revision: str = ""  # dataset revision the page choice was made from ("" when the source has none)
    revisions: tuple[str, ...] = ()  # every revision an answer of this round carried (more than one: mixed)
    configs: tuple[tuple[str, int], ...] = ()  # what pages were chosen from: (dump or file, rows or bytes)
    replaced_pages: tuple[str, ...] = ()  # seeded pages that failed and were replaced by later ones
    dropped: tuple[tuple[str, int], ...] = ()  # documents left out and why: (("empty", 3), ...)
    notes: tuple[str, ...] = ()  # what the server said about its own state (pending/failed/partial)

    @property
    def mixed_revisions(self) -> bool:
        return len(set(self.revisions)) > 1

    @property
    def complete(self) -> bool:
        """Every seeded page was fetched, none replaced, all from one revision: comparable with peers."""
        return not self.failed_pages and not self.replaced_pages and not self.mixed_revisions

    def identity(self) -> dict:
        """What the seed chose, as plain data for the round's record (and its digest)."""
        chosen = {"source": self.source, "revision": self.revision, "configs": [list(c) for c in self.configs],
                  "page_ids": list(self.page_ids)}
        return {**chosen, "identity_digest": hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest(),
                "revisions": sorted(set(self.revisions)), "mixed_revisions": self.mixed_revisions,
                "replaced_pages": list(self.replaced_pages), "dropped": dict(self.dropped), "notes": list(self.notes)}


@runtime_checkable
class DocumentSource(Protocol):
    """Chooses and fetches a round's pages deterministically from a seed."""

    def fetch_round(self, seed: str, pages: int, page_size: int, max_documents: int) -> RoundData: ...


@dataclass
class TokenizedDocuments:
    """A round's documents tokenized once per tokenizer, shared by every model that uses it.

    `tokens[i]` holds document i's ids (EOS appended, cut at max_seq_len: exactly the positions
    the competition promises a model). Position 0 is context only: n_predicted = len - 1.
    `n_bytes[i]` counts the UTF-8 bytes of the text those tokens cover, so bits per byte of a cut
    document compares the loss of its scored prefix with that prefix's bytes.
    """

    doc_ids: list[str]
    tokens: list[np.ndarray]  # int64 arrays, one per document
    n_bytes: np.ndarray  # UTF-8 bytes of the text each document's tokens cover
    truncated: np.ndarray  # bool: the document was cut at max_seq_len
    tokenizer: str = ""
    digest: str = ""  # of the round's documents (RoundData.digest)
    extra: dict = field(default_factory=dict)
    # A free-tokenizer competition's texts (each model tokenizes them itself; `tokens` are then empty).
    texts: list[str] | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def n_predicted(self) -> np.ndarray:
        return np.array([max(len(t) - 1, 0) for t in self.tokens], dtype=np.int64)

    def subset(self, indices: Sequence[int]) -> "TokenizedDocuments":
        idx = list(indices)
        return TokenizedDocuments(
            doc_ids=[self.doc_ids[i] for i in idx],
            tokens=[self.tokens[i] for i in idx],
            n_bytes=self.n_bytes[idx],
            truncated=self.truncated[idx],
            tokenizer=self.tokenizer,
            digest=self.digest,
            texts=None if self.texts is None else [self.texts[i] for i in idx],
        )
