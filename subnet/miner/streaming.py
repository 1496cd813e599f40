"""Training data at scale: FineWeb (or any parquet text dataset) streamed with the `datasets` library.

`--dataset stream:HuggingFaceFW/fineweb:sample-10BT` streams a Hub dataset (a config after the
second colon); `--dataset stream:DIR` streams the parquet files of a local directory. Nothing is
downloaded in full: `datasets` reads the parquet files as it goes.

- Deterministic per data shard: `split_dataset_by_node` gives shard i of n whole files when the
  dataset has a multiple of n files, else every n-th example; either way a pure function of (i, n).
- Resumable mid-epoch: the stream is read in chunks of documents; a checkpoint stores the
  `datasets` state at the start of the current chunk plus the position inside it, so a resumed
  run reads exactly the documents an uninterrupted one would have.
- The benchmark's held-out documents are skipped by id and by text, as in the packed stream.
"""

from __future__ import annotations

import copy
from pathlib import Path

from subnet.data.types import Document
from subnet.miner.data import HeldOut, PackedStream, tokenize_for_training

STREAM_PREFIX = "stream:"


def is_stream(dataset: str) -> bool:
    return dataset.startswith(STREAM_PREFIX) and len(dataset) > len(STREAM_PREFIX)


def open_stream(dataset: str, shard: int, shards: int):
    """The `datasets` IterableDataset of one data shard."""
    from datasets import load_dataset
    from datasets.distributed import split_dataset_by_node

    target = dataset[len(STREAM_PREFIX):]
    local = Path(target).expanduser()
    if local.is_dir():
        files = sorted(str(p) for p in local.rglob("*.parquet"))
        if not files:
            raise ValueError(f"{dataset}: no .parquet files under {local}")
        ds = load_dataset("parquet", data_files={"train": files}, split="train", streaming=True)
    else:
        repo, _, config = target.partition(":")
        ds = load_dataset(repo, name=config or None, split="train", streaming=True)
    return split_dataset_by_node(ds, rank=shard, world_size=shards)


class StreamingPackedStream(PackedStream):
    """A PackedStream whose documents come from a streamed dataset instead of seeded rounds."""

    def __init__(self, dataset: str, tokenizer, seq_len: int, *, seed: int, held_out: HeldOut | None = None,
                 rank: int = 0, world_size: int = 1, docs_per_chunk: int = 200) -> None:
        super().__init__(None, tokenizer, seq_len, seed=seed, held_out=held_out, rank=rank, world_size=world_size,
                         docs_per_chunk=docs_per_chunk)
        self.dataset = dataset
        self.ds = open_stream(dataset, rank, world_size)
        self.epoch = 0
        self._iterator = None
        self._fresh_epoch = True
        self._chunk_state = self.ds.state_dict()

    def state_dict(self) -> dict:
        return {**super().state_dict(), "dataset": self.dataset, "epoch": self.epoch,
                "stream": copy.deepcopy(self._chunk_state)}

    def load_state_dict(self, state: dict) -> None:
        if state.get("dataset") != self.dataset:
            raise ValueError(f"data stream is {self.dataset!r} but the checkpoint has {state.get('dataset')!r}")
        super().load_state_dict(state)
        self.epoch = int(state["epoch"])
        self.ds.set_epoch(self.epoch)
        self._chunk_state = copy.deepcopy(state["stream"])
        self._iterator = None

    def _read_chunk(self) -> list:
        """The next `docs_per_chunk` rows from where the current chunk starts; an epoch's end ends the chunk."""
        if self._iterator is None:
            self.ds.load_state_dict(copy.deepcopy(self._chunk_state))
            self._iterator = iter(self.ds)
        rows = []
        while len(rows) < self.docs_per_chunk:
            try:
                rows.append(next(self._iterator))
            except StopIteration:
                if not rows and self._fresh_epoch:
                    raise RuntimeError(f"{self.dataset} (shard {self.rank} of {self.world_size}) yielded no "
                                       "documents") from None
                self.epoch += 1
                self.ds.set_epoch(self.epoch)
                self._iterator = iter(self.ds)
                self._fresh_epoch = True
                if rows:
                    break
                continue
            self._fresh_epoch = False
        return rows

    def _current_chunk(self):
        if self._chunk_tokens is None:
            if self._iterator is not None:  # a new chunk starts here: remember where, for checkpoints
                self._chunk_state = copy.deepcopy(self.ds.state_dict())
            rows = self._read_chunk()
            texts = []
            for row in rows:
                text = row.get("text")
                if not isinstance(text, str) or not text.strip():
                    continue
                doc_id = str(row.get("id") or "")
                if self.held_out.excludes(Document(doc_id, text)):
                    self.excluded += 1
                    continue
                texts.append(text)
            self._chunk_tokens = tokenize_for_training(self.tokenizer, texts)
        return self._chunk_tokens
