"""The values that flow from a data source to the evaluation engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Document:
    id: str  # stable id: "<page id>/<row index>" for sampled pages
    text: str


@dataclass(frozen=True)
class RoundData:
    """A round's raw documents and the record that lets two validators compare what they scored."""

    seed: str  # hex block hash the pages were chosen from
    page_ids: tuple[str, ...]  # pages that were fetched, in sampling order
    documents: tuple[Document, ...]  # deduplicated by content, in sampling order
    failed_pages: tuple[str, ...] = ()  # pages given up on after bounded retries, with reasons
    digest: str = ""  # sha256 over the documents' texts in order


@runtime_checkable
class DocumentSource(Protocol):
    """Chooses and fetches a round's pages deterministically from a seed."""

    def fetch_round(self, seed: str, pages: int, page_size: int, max_documents: int) -> RoundData: ...


@dataclass
class TokenizedDocuments:
    """A round's documents tokenized once per tokenizer, shared by every model that uses it.

    `tokens[i]` holds document i's ids (EOS appended, truncated at max_seq_len + 1 so that
    max_seq_len tokens are predicted). Only positions 1.. are predicted: n_predicted = len - 1.
    """

    doc_ids: list[str]
    tokens: list[np.ndarray]  # int64 arrays, one per document
    n_bytes: np.ndarray  # UTF-8 bytes of each document's text (before truncation)
    truncated: np.ndarray  # bool: the document was cut at max_seq_len
    tokenizer: str = ""
    digest: str = ""  # of the round's documents (RoundData.digest)
    extra: dict = field(default_factory=dict)

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
        )
