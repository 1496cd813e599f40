"""Documents packed into fixed-size token blocks: no FLOP spent on padding, one batch shape.

A row of a packed batch holds several documents back to back. Each document gets its own
position ids (0..len-1), and the model is called with those position ids and no attention
mask: transformers then treats every restart of the positions as a new sequence, builds a
block-diagonal causal mask for SDPA / eager / flex attention (masking_utils.find_packed_sequence_indices)
and uses flash-attention's variable-length kernels for `flash_attention_2/3` (there the batch
must be one row, see `flatten_for_varlen`). Attention therefore never crosses documents, and
each document's losses are those of the document scored alone.

The plan depends only on the documents' lengths and the block size, never on free memory, so
two validators with the same documents build the same rows. Rows are filled first-fit
decreasing; a document longer than the block gets a row of its own, exactly its length, in a
batch of its own (it is never split: attention over a split document would need the first
part's keys and values, and the block is chosen >= the competition's sequence length anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

BLOCK_MULTIPLE = 64  # block sizes are rounded up to this: friendlier shapes for GPU kernels


@dataclass(frozen=True)
class PackedBatch:
    rows: tuple[tuple[int, ...], ...]  # document indices per row, in order within the row
    width: int  # tokens per row


def block_for(lengths: Sequence[int]) -> int:
    """The default block: the round's longest document, rounded up to BLOCK_MULTIPLE."""
    longest = max((int(n) for n in lengths), default=1)
    return -(-max(longest, 1) // BLOCK_MULTIPLE) * BLOCK_MULTIPLE


def plan_packed(lengths: Sequence[int], block_tokens: int, rows_per_batch: int) -> list[PackedBatch]:
    """Rows of documents (first-fit decreasing) grouped `rows_per_batch` rows to a batch.

    Documents with fewer than 2 tokens predict nothing and are left out. Ties in length keep
    input order (stable sort), so the plan is a pure function of its arguments.
    """
    if block_tokens < 1 or rows_per_batch < 1:
        raise ValueError(f"block_tokens and rows_per_batch must be >= 1, got {block_tokens}, {rows_per_batch}")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = [int(i) for i in np.argsort(-lengths, kind="stable") if lengths[i] >= 2]
    oversize = [i for i in order if lengths[i] > block_tokens]
    rows: list[list[int]] = []
    free = np.zeros(0, dtype=np.int64)
    for i in order:
        if lengths[i] > block_tokens:
            continue
        fits = np.flatnonzero(free >= lengths[i])
        if len(fits):
            r = int(fits[0])
            rows[r].append(i)
            free[r] -= lengths[i]
        else:
            rows.append([i])
            free = np.append(free, block_tokens - lengths[i])
    batches = [PackedBatch(((i,),), int(lengths[i])) for i in oversize]
    for start in range(0, len(rows), rows_per_batch):
        group = tuple(tuple(r) for r in rows[start : start + rows_per_batch])
        batches.append(PackedBatch(group, block_tokens))
    return batches


def pack_rows(
    docs: Sequence[np.ndarray], rows: Sequence[Sequence[int]], width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, position_ids, doc_of, predicts) for packed rows, each (rows, width).

    doc_of[r, t] is the document index of token t of row r (-1 in the tail); predicts[r, t] is True
    where position t's output predicts token t + 1 of the same document. The tail after a row's
    last document repeats that document's last token with positions restarting at 0: a separate
    sequence no real token attends to, made of a token the row already holds (a miner's model may
    hold NaN for some token; a foreign pad id could bring it into the row).
    """
    ids = np.empty((len(rows), width), dtype=np.int64)
    pos = np.empty((len(rows), width), dtype=np.int64)
    doc_of = np.full((len(rows), width), -1, dtype=np.int64)
    for r, row in enumerate(rows):
        t = 0
        for d in row:
            tokens = np.asarray(docs[d], dtype=np.int64)
            n = len(tokens)
            if t + n > width:
                raise ValueError(f"row {r} holds {t + n} tokens, more than its width {width}")
            ids[r, t : t + n] = tokens
            pos[r, t : t + n] = np.arange(n)
            doc_of[r, t : t + n] = d
            t += n
        ids[r, t:] = ids[r, t - 1] if t else 0
        pos[r, t:] = np.arange(width - t)
    predicts = np.zeros_like(doc_of, dtype=bool)
    predicts[:, :-1] = (doc_of[:, :-1] >= 0) & (doc_of[:, :-1] == doc_of[:, 1:])
    return (torch.from_numpy(ids), torch.from_numpy(pos), torch.from_numpy(doc_of), torch.from_numpy(predicts))


def flatten_for_varlen(ids: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One row of all rows back to back: transformers' flash-attention path detects packed
    sequences from position ids only when the batch has a single row."""
    return ids.reshape(1, -1), pos.reshape(1, -1)
