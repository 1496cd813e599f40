"""A free-tokenizer round's documents: the texts themselves, cut to the same bytes for every model.

With one tokenizer a document is cut at `max_seq_len` tokens. When every model brings its own
tokenizer a token cut would give each model other bytes to predict, so the text is cut instead, at
a character boundary, to `BYTES_PER_POSITION * max_seq_len` UTF-8 bytes (about what a good
tokenizer covers in that many tokens); a model whose tokenizer needs more positions scores the text
in consecutive windows (`subnet.eval.free_tokens`). Every model then predicts the same bytes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from subnet.data.types import Document, TokenizedDocuments

BYTES_PER_POSITION = 4


def cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` of at most `max_bytes` UTF-8 bytes that ends on a character."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", errors="ignore")


def text_documents(documents: Sequence[Document], max_seq_len: int, digest: str = "") -> TokenizedDocuments:
    """The round's texts for a free-tokenizer competition: no tokens, `n_bytes` the bytes every model predicts."""
    limit = BYTES_PER_POSITION * max_seq_len
    texts = [cut_utf8(doc.text, limit) for doc in documents]
    return TokenizedDocuments(
        doc_ids=[doc.id for doc in documents],
        tokens=[np.zeros(0, dtype=np.int64) for _ in texts],
        n_bytes=np.array([len(t.encode("utf-8")) for t in texts], dtype=np.int64),
        truncated=np.array([t != doc.text for t, doc in zip(texts, documents)], dtype=bool),
        tokenizer="free",
        digest=digest,
        texts=texts,
    )
