"""Seeded page choice, deduplication, digests and tokenization: what every source and round shares.

Validators agree on a round only if they choose the same pages from the same seed (a block
hash) and turn them into the same tokens. So every random choice here comes from a private
`random.Random` seeded from the block hash string, never the global RNG, and the digest lets
two validators check they scored the same documents.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from typing import Sequence

import numpy as np

from subnet.data.types import Document, DocumentSource, RoundData, TokenizedDocuments

SEED_WINDOW_BLOCKS = 150  # subnet 9: seed pages from the hash of block floor(block / 150) * 150


def page_rng(seed: str, *labels: object) -> random.Random:
    """A private RNG for page choices, seeded from the block hash string (and optional labels).

    `page_rng(seed, k)` gives the k-th choice its own stream, so the k-th page is a pure
    function of (seed, k) whatever happened to pages before it.
    """
    if not isinstance(seed, str) or not seed:
        raise ValueError(f"seed must be a non-empty string (a block hash), got {seed!r}")
    key = "\x1f".join([seed, *(str(label) for label in labels)]).encode("utf-8")
    return random.Random(int.from_bytes(hashlib.sha256(key).digest(), "big"))


def seed_block(block: int, window: int = SEED_WINDOW_BLOCKS) -> int:
    """The block whose hash seeds the round that includes `block`."""
    if block < 0 or window <= 0:
        raise ValueError(f"need block >= 0 and window > 0, got block={block}, window={window}")
    return (block // window) * window


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def dedupe_documents(documents: Sequence[Document]) -> list[Document]:
    """Drop documents whose text already appeared, keeping the first: duplicates would count twice."""
    seen: set[str] = set()
    unique: list[Document] = []
    for doc in documents:
        h = content_hash(doc.text)
        if h not in seen:
            seen.add(h)
            unique.append(doc)
    return unique


def documents_digest(documents: Sequence[Document]) -> str:
    """sha256 hex over the texts in order, each length-prefixed so boundaries cannot shift."""
    h = hashlib.sha256()
    for doc in documents:
        data = doc.text.encode("utf-8")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def encode_texts(tokenizer, texts: list[str]) -> list[list[int]]:
    """Batch-encode without special tokens, through the Rust backend when there is one (fast, no warnings).

    Public so the miner's training data is encoded exactly as validators encode documents.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return [enc.ids for enc in backend.encode_batch_fast(texts, add_special_tokens=False)]
    return tokenizer(texts, add_special_tokens=False, return_attention_mask=False, verbose=False)["input_ids"]


def is_blank(text: str) -> bool:
    """Empty or whitespace only: nothing to predict, and a round of them would be judged on nothing."""
    return not text.strip()


def clean_documents(documents: Sequence[Document]) -> tuple[list[Document], dict[str, int]]:
    """Blank texts dropped, then duplicates; returns what is left and how many each rule dropped."""
    kept = [d for d in documents if not is_blank(d.text)]
    unique = dedupe_documents(kept)
    dropped = {"blank": len(documents) - len(kept), "duplicate": len(kept) - len(unique)}
    return unique, {k: v for k, v in dropped.items() if v}


def tokenize_documents(documents: Sequence[Document], tokenizer, max_seq_len: int,
                       digest: str = "") -> TokenizedDocuments:
    """Tokenize once per tokenizer: EOS appended, cut at max_seq_len tokens (max_seq_len - 1 predicted).

    The model is fed exactly the max_seq_len positions the competition promises, never one more
    (a model built for max_seq_len positions has no embedding for position max_seq_len). `n_bytes`
    counts the bytes of the text the kept tokens cover, so bits per byte of a cut document divides
    its prefix's loss by its prefix's bytes.
    """
    if max_seq_len < 2:
        raise ValueError(f"max_seq_len must be >= 2 (one context and one predicted token), got {max_seq_len}")
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ValueError(f"tokenizer {getattr(tokenizer, 'name_or_path', tokenizer)!r} has no eos_token_id")
    texts = [doc.text for doc in documents]
    encoded = encode_texts(tokenizer, texts) if texts else []
    tokens: list[np.ndarray] = []
    truncated = np.zeros(len(texts), dtype=bool)
    n_bytes = np.zeros(len(texts), dtype=np.int64)
    for i, ids in enumerate(encoded):
        ids = list(ids) + [eos]
        if len(ids) > max_seq_len:
            ids = ids[:max_seq_len]
            truncated[i] = True
            n_bytes[i] = covered_bytes(tokenizer, texts[i], ids)
        else:
            n_bytes[i] = len(texts[i].encode("utf-8"))
        tokens.append(np.asarray(ids, dtype=np.int64))
    return TokenizedDocuments(
        doc_ids=[doc.id for doc in documents],
        tokens=tokens,
        n_bytes=n_bytes,
        truncated=truncated,
        tokenizer=str(getattr(tokenizer, "name_or_path", "") or ""),
        digest=digest,
    )


def covered_bytes(tokenizer, text: str, kept_ids: Sequence[int]) -> int:
    """UTF-8 bytes of the prefix of `text` that the kept token ids encode (their character offsets)."""
    n = len(kept_ids)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        offsets = backend.encode(text, add_special_tokens=False).offsets[:n]
        end = max((stop for _, stop in offsets), default=0)
        return len(text[:end].encode("utf-8"))
    prefix = tokenizer.decode(list(kept_ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return len(prefix.encode("utf-8", errors="replace"))


def build_round(source: DocumentSource, seed: str, competition) -> RoundData:
    """Fetch a round's documents with the competition's sampling budget: blank and duplicate texts dropped."""
    budget = competition.sampling
    data = source.fetch_round(seed, budget.pages, budget.page_size, budget.max_documents)
    docs, dropped = clean_documents(data.documents)
    counts = dict(data.dropped)
    for reason, n in dropped.items():
        counts[reason] = counts.get(reason, 0) + n
    docs = docs[: budget.max_documents]
    return dataclasses.replace(data, documents=tuple(docs), digest=documents_digest(docs),
                               dropped=tuple(sorted(counts.items())))
