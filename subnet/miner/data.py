"""Training data: the validator's document sources, streamed, tokenized and packed.

Why it looks like this:
- Same sources as the validator (`subnet.data.sources.make_source`), so a miner trains on the
  distribution it is judged on.
- The benchmark's reference documents (a fixed seed) are held out: training chunks use other
  seeds, and any training document whose id or text matches a reference document is dropped, so
  a benchmark never scores a model on text it trained on.
- The stream is a pure function of (seed, rank, world size, position). Its position is three
  numbers and a short token buffer, saved in every checkpoint, so a resumed run sees exactly the
  batches an uninterrupted run would have seen.
- Documents are packed back to back, EOS after each, into fixed-length rows: no padding is
  wasted, and attention crossing a document boundary is harmless for training.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from subnet.competitions import Competition
from subnet.data.types import Document, DocumentSource

REFERENCE_LABEL = "reference"
MAX_PAGE_SIZE = 100  # the datasets-server API's page limit, respected by every source


def labelled_seed(label: str) -> str:
    """A hex seed shaped like a block hash, derived from a readable label."""
    return "0x" + hashlib.sha256(label.encode("utf-8")).hexdigest()


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_training_source(competition: Competition, dataset: str = "", **source_config) -> DocumentSource:
    """The competition's document source, or another dataset ("synthetic", "fineweb", "parquet:DIR")."""
    from subnet.data.sources import make_source

    if dataset and dataset != competition.dataset:
        competition = dataclasses.replace(competition, dataset=dataset)
    return make_source(competition, **source_config)


def fetch_documents(source: DocumentSource, seed: str, n: int) -> list[Document]:
    """Up to `n` documents of one seeded round (as many pages as needed, at most 100 rows each)."""
    page_size = min(MAX_PAGE_SIZE, n)
    pages = -(-n // page_size)
    return list(source.fetch_round(seed, pages, page_size, n).documents)[:n]


def reference_documents(source: DocumentSource, n: int) -> list[Document]:
    """The held-out documents `benchmark` scores on: fixed by a seed, never trained on."""
    if n <= 0:
        raise ValueError(f"the reference set needs at least one document, asked for {n}")
    return fetch_documents(source, labelled_seed(REFERENCE_LABEL), n)


@dataclass(frozen=True)
class HeldOut:
    """Ids and text hashes of documents that training must never see."""

    ids: frozenset[str]
    digests: frozenset[str]

    @classmethod
    def of(cls, documents: Sequence[Document]) -> "HeldOut":
        return cls(frozenset(d.id for d in documents), frozenset(text_digest(d.text) for d in documents))

    def excludes(self, document: Document) -> bool:
        return document.id in self.ids or text_digest(document.text) in self.digests


def chunk_seed(data_seed: int, global_chunk: int) -> str:
    return labelled_seed(f"train:{data_seed}:{global_chunk}")


class PackedStream:
    """Fixed-length token rows from an endless, rank-sharded, resumable document stream.

    Rank r of w reads chunks r, r + w, r + 2w, ... (a chunk is one seeded `fetch_round`), so ranks
    never train on the same chunk. `next_batch(b)` returns a (b, seq_len + 1) int64 tensor: inputs
    are row[:, :-1], targets row[:, 1:].
    """

    def __init__(
        self,
        source: DocumentSource,
        tokenizer,
        seq_len: int,
        *,
        seed: int,
        held_out: HeldOut | None = None,
        rank: int = 0,
        world_size: int = 1,
        docs_per_chunk: int = 200,
    ) -> None:
        if seq_len < 1:
            raise ValueError(f"seq_len must be positive, got {seq_len}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos_token; documents are packed with EOS between them")
        self.source = source
        self.tokenizer = tokenizer
        self.row_len = seq_len + 1
        self.seed = seed
        self.held_out = held_out or HeldOut(frozenset(), frozenset())
        self.rank = rank
        self.world_size = world_size
        self.docs_per_chunk = docs_per_chunk
        # Position: next chunk to fetch (local index), next document in the current chunk, leftover tokens.
        self.chunk = 0
        self.doc = 0
        self.buffer = np.zeros(0, dtype=np.int64)
        self._chunk_tokens: list[np.ndarray] | None = None
        self.excluded = 0  # held-out documents skipped so far (in chunks loaded by this process)

    # ------------------------------------------------------------------ position

    def state_dict(self) -> dict:
        return {
            "chunk": self.chunk, "doc": self.doc, "buffer": torch.from_numpy(self.buffer.copy()),
            "seed": self.seed, "rank": self.rank, "world_size": self.world_size, "row_len": self.row_len,
            "docs_per_chunk": self.docs_per_chunk,
        }

    def load_state_dict(self, state: dict) -> None:
        for key in ("seed", "rank", "world_size", "row_len", "docs_per_chunk"):
            if state[key] != getattr(self, key):
                raise ValueError(f"data stream {key} is {getattr(self, key)} but the checkpoint has {state[key]}")
        self.chunk, self.doc = int(state["chunk"]), int(state["doc"])
        self.buffer = state["buffer"].numpy().astype(np.int64).copy()
        self._chunk_tokens = None  # re-fetched (deterministically) on demand

    # ------------------------------------------------------------------ reading

    def _current_chunk(self) -> list[np.ndarray]:
        if self._chunk_tokens is None:
            global_chunk = self.chunk * self.world_size + self.rank
            docs = fetch_documents(self.source, chunk_seed(self.seed, global_chunk), self.docs_per_chunk)
            kept = [d for d in docs if not self.held_out.excludes(d)]
            self.excluded += len(docs) - len(kept)
            self._chunk_tokens = tokenize_for_training(self.tokenizer, [d.text for d in kept])
            if not self._chunk_tokens and not docs:
                raise RuntimeError(f"data source returned no documents for training chunk {global_chunk}")
        return self._chunk_tokens

    def _next_document(self) -> np.ndarray:
        while True:
            chunk = self._current_chunk()
            if self.doc < len(chunk):
                tokens = chunk[self.doc]
                self.doc += 1
                return tokens
            self.chunk, self.doc, self._chunk_tokens = self.chunk + 1, 0, None

    def next_row(self) -> np.ndarray:
        pieces = [self.buffer]
        have = len(self.buffer)
        while have < self.row_len:
            tokens = self._next_document()
            pieces.append(tokens)
            have += len(tokens)
        joined = np.concatenate(pieces)
        row, self.buffer = joined[: self.row_len], joined[self.row_len :].copy()
        return row

    def next_batch(self, batch_size: int) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.next_row() for _ in range(batch_size)]))


def tokenize_for_training(tokenizer, texts: Sequence[str]) -> list[np.ndarray]:
    """Each text's ids followed by EOS, as the validator tokenizes (no BOS), but never truncated."""
    from subnet.data.sampling import encode_texts  # the validator's encoding: one convention, one place

    if not texts:
        return []
    eos = tokenizer.eos_token_id
    return [np.asarray(list(ids) + [eos], dtype=np.int64) for ids in encode_texts(tokenizer, list(texts))]


class ShardedStreams:
    """This process's share of `shards` data streams, used in turn, one per micro-batch.

    The data of a step is fixed by the number of shards, not by the number of processes: one
    process with `grad_accum = 2` over 2 shards sees exactly the rows two processes see with
    `grad_accum = 1`, so a run's loss curve does not depend on how many GPUs computed it.
    Process `rank` of `world_size` holds shards rank, rank + world_size, ...
    """

    def __init__(self, make_stream, shards: int, rank: int, world_size: int) -> None:
        if shards % world_size:
            raise ValueError(f"data shards ({shards}) must be a multiple of the number of processes ({world_size})")
        self.streams = [make_stream(shard, shards) for shard in range(rank, shards, world_size)]
        self._next = 0

    def next_batch(self, batch_size: int) -> torch.Tensor:
        stream = self.streams[self._next]
        self._next = (self._next + 1) % len(self.streams)
        return stream.next_batch(batch_size)

    @property
    def excluded(self) -> int:
        return sum(s.excluded for s in self.streams)

    def state_dict(self) -> list[dict]:
        return [s.state_dict() for s in self.streams]

    def load_state_dict(self, state) -> None:
        """A list of stream positions; a single dict is a checkpoint from before data shards."""
        states = [state] if isinstance(state, dict) else list(state)
        if len(states) != len(self.streams):
            raise ValueError(f"checkpoint holds {len(states)} data stream(s) for this process, the run has "
                             f"{len(self.streams)}")
        for stream, st in zip(self.streams, states):
            stream.load_state_dict(st)
        self._next = 0

