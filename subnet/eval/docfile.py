"""TokenizedDocuments to and from one .npz file, so worker processes read a round's documents
from disk instead of receiving them pickled (written once per round, read by every worker)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from subnet.data.types import TokenizedDocuments


def save_documents(docs: TokenizedDocuments, path: str | Path) -> Path:
    path = Path(path)
    lengths = np.array([len(t) for t in docs.tokens], dtype=np.int64)
    flat = np.concatenate([np.asarray(t, dtype=np.int64) for t in docs.tokens]) if len(docs) else np.zeros(0, np.int64)
    with open(path, "wb") as f:  # an open file keeps numpy from appending ".npz" to the name
        np.savez(
            f,
            tokens=flat,
            lengths=lengths,
            n_bytes=np.asarray(docs.n_bytes, dtype=np.int64),
            truncated=np.asarray(docs.truncated, dtype=bool),
            doc_ids=np.array(docs.doc_ids, dtype=np.str_),
            tokenizer=np.array(docs.tokenizer),
            digest=np.array(docs.digest),
            **_text_arrays(docs.texts),
        )
    return path


def _text_arrays(texts: list[str] | None) -> dict:
    """A free-tokenizer round's texts as one UTF-8 byte array and their lengths (no fixed-width strings)."""
    if texts is None:
        return {}
    encoded = [t.encode("utf-8") for t in texts]
    return {"text_bytes": np.frombuffer(b"".join(encoded), dtype=np.uint8),
            "text_lengths": np.array([len(b) for b in encoded], dtype=np.int64)}


def _texts(data) -> list[str] | None:
    if "text_bytes" not in data.files:
        return None
    raw, bounds = data["text_bytes"].tobytes(), np.concatenate([[0], np.cumsum(data["text_lengths"])])
    return [raw[bounds[i]:bounds[i + 1]].decode("utf-8") for i in range(len(bounds) - 1)]


def load_documents(path: str | Path) -> TokenizedDocuments:
    with np.load(path, allow_pickle=False) as data:
        flat, lengths = data["tokens"], data["lengths"]
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        return TokenizedDocuments(
            doc_ids=[str(x) for x in data["doc_ids"]],
            tokens=[flat[bounds[i] : bounds[i + 1]] for i in range(len(lengths))],
            n_bytes=data["n_bytes"].copy(),
            truncated=data["truncated"].copy(),
            tokenizer=str(data["tokenizer"]),
            digest=str(data["digest"]),
            texts=_texts(data),
        )
