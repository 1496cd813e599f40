"""Scoring a model with its own tokenizer: the round's texts, tokenized in the worker, losses per byte.

Runs inside the scoring worker (time- and memory-limited), after `subnet.hub.loading` has checked
the model's tokenizer.json (`subnet.hub.tokenizer_file`). Each text must survive
`decode(encode(text)) == text`: a text that does not is a failed document (it loses every paired
comparison it decides, like a non-finite loss); more than `MAX_ROUND_TRIP_FAILURES` of them reject
the model. Every id must index the model's embeddings, and no text may take more tokens than it has
bytes (a tokenizer cannot buy compute). A document is `[eos] + encode(text) + [eos]`, so every token
of the text is predicted whatever the tokenizer; one longer than `max_seq_len` is scored in
consecutive windows that overlap by one token, so every token is still predicted exactly once.
The per-document NLL is then summed over the text's UTF-8 bytes, the same for every model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from subnet.data.types import TokenizedDocuments
from subnet.eval.types import STATUS_FAILED, STATUS_OK, STATUS_TRUNCATED, DocLosses
from subnet.hub.errors import ModelRejected
from subnet.hub.tokenizer_file import read_tokenizer_file, separator_id

MAX_ROUND_TRIP_FAILURES = 3  # as subnet 29: a few odd texts are a failed document each, more reject the model


@dataclass
class FreeTokens:
    """The round's texts as windows a model can score, and which document each window belongs to."""

    windows: TokenizedDocuments
    owner: np.ndarray  # document index per window
    failed: np.ndarray  # bool per document: its text does not survive the round trip


def build_tokenizer(model_dir: Path | str, vocab_rows: int):
    """The model's checked tokenizer.json as a `tokenizers.Tokenizer` (no truncation, no padding)."""
    from tokenizers import Tokenizer

    spec = read_tokenizer_file(model_dir, vocab_rows)
    try:
        tokenizer = Tokenizer.from_str(spec.text)
    except Exception as e:  # noqa: BLE001 - the library refuses a file our checks let through
        raise ModelRejected("bad_tokenizer", f"tokenizer.json cannot be built: {type(e).__name__}: {e}"[:500]) from None
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def tokenize_free(tokenizer, texts: list[str], doc_ids: list[str], max_seq_len: int, eos: int,
                  vocab_rows: int) -> FreeTokens:
    """Windows of `[eos] + ids + [eos]` per text that survives the round trip; ModelRejected past the bounds."""
    encoded = _guarded("encoding the texts", tokenizer.encode_batch, texts, add_special_tokens=False) if texts else []
    failed = np.zeros(len(texts), dtype=bool)
    windows, owner = [], []
    for i, (text, enc) in enumerate(zip(texts, encoded)):
        ids = list(enc.ids)
        n_bytes = len(text.encode("utf-8"))
        if len(ids) > n_bytes:
            raise ModelRejected("bad_tokenizer", f"document {doc_ids[i]} takes {len(ids):,} tokens for "
                                                 f"{n_bytes:,} bytes; no text may take more tokens than bytes")
        if ids and max(ids) >= vocab_rows:
            raise ModelRejected("tokenizer_ids", f"document {doc_ids[i]} encodes to id {max(ids):,}, the model's "
                                                 f"embeddings have {vocab_rows:,} rows")
        if _guarded(f"decoding document {doc_ids[i]}", tokenizer.decode, ids, skip_special_tokens=False) != text:
            failed[i] = True
            continue
        for piece in _windows([eos, *ids, eos], max_seq_len):
            windows.append(np.asarray(piece, dtype=np.int64))
            owner.append(i)
    if failed.sum() > MAX_ROUND_TRIP_FAILURES:
        first = ", ".join(doc_ids[i] for i in np.flatnonzero(failed)[:3])
        raise ModelRejected("tokenizer_round_trip", f"{int(failed.sum())} of {len(texts)} documents do not survive "
                                                    f"decode(encode(text)) == text (at most {MAX_ROUND_TRIP_FAILURES} "
                                                    f"may); first: {first}")
    docs = TokenizedDocuments(doc_ids=[doc_ids[i] for i in owner], tokens=windows,
                              n_bytes=np.zeros(len(windows), dtype=np.int64),
                              truncated=np.zeros(len(windows), dtype=bool))
    return FreeTokens(docs, np.asarray(owner, dtype=np.int64), failed)


def _guarded(what: str, call, *args, **kwargs):
    """`call(...)`, with the library's failures as the model's: the Rust library panics with pyo3's
    PanicException, a BaseException (Oniguruma gives up on a regex that backtracks too long that way)."""
    try:
        return call(*args, **kwargs)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as e:  # noqa: BLE001 - see the docstring
        raise ModelRejected("bad_tokenizer", f"the tokenizer failed {what}: {type(e).__name__}: {e}"[:500]) from None


def _windows(seq: list[int], max_seq_len: int) -> list[list[int]]:
    """Consecutive windows of at most max_seq_len tokens, each starting on the last token of the one before."""
    step = max_seq_len - 1
    return [seq[start:start + max_seq_len] for start in range(0, max(len(seq) - 1, 1), step)]


def free_losses(model, model_dir: Path | str, docs: TokenizedDocuments, max_seq_len: int, device="cpu",
                token_budget: int | None = None, on_documents=None) -> DocLosses:
    """Per-document losses of `model` on `docs.texts` with the model's own tokenizer; n_bytes: the text's bytes."""
    from subnet.eval.engine import compute_losses

    vocab_rows = int(model.get_input_embeddings().num_embeddings)
    eos = separator_id(getattr(model.config, "eos_token_id", None), vocab_rows)
    tokenizer = build_tokenizer(model_dir, vocab_rows)
    free = tokenize_free(tokenizer, list(docs.texts or []), list(docs.doc_ids), max_seq_len, eos, vocab_rows)
    n = len(docs)
    nll, n_tokens, bad = np.zeros(n), np.zeros(n, dtype=np.int64), free.failed.copy()
    if len(free.windows):
        scored = compute_losses(model, free.windows, device=device, token_budget=token_budget)
        np.add.at(nll, free.owner, scored.nll_sum)
        np.add.at(n_tokens, free.owner, scored.n_tokens)
        bad[free.owner[scored.status == STATUS_FAILED]] = True
    if on_documents is not None:
        on_documents(n)
    status = np.where(np.asarray(docs.truncated, dtype=bool), STATUS_TRUNCATED, STATUS_OK).astype(np.int8)
    status[bad | ~np.isfinite(nll)] = STATUS_FAILED
    nll[bad] = np.nan
    return DocLosses(nll_sum=nll, n_tokens=n_tokens, n_bytes=np.asarray(docs.n_bytes, dtype=np.int64), status=status)


def score_documents(model, model_dir: Path | str, docs: TokenizedDocuments, max_seq_len: int, device="cpu",
                    token_budget: int | None = None, on_documents=None) -> DocLosses:
    """The round's losses for one loaded model: its own tokenizer on the texts of a free round, else the tokens."""
    if docs.texts is not None:
        return free_losses(model, model_dir, docs, max_seq_len, device, token_budget, on_documents)
    from subnet.eval.engine import compute_losses

    return compute_losses(model, docs, device=device, token_budget=token_budget, on_documents=on_documents)
