"""Group documents into padded batches under a token budget.

Documents are sorted by length (longest first) and cut into consecutive buckets, so documents
of similar length share a batch and right-padding wastes little. A batch's cost is what the
model actually computes: rows x longest row. A document longer than the budget gets a batch of
its own rather than being refused: the budget bounds memory, it never drops work.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def plan_batches(lengths: Sequence[int], token_budget: int) -> list[list[int]]:
    """Document indices per batch, longest documents first, each batch's rows x max_len <= budget.

    Documents with fewer than 2 tokens predict nothing and are left out of every batch.
    """
    if token_budget < 1:
        raise ValueError(f"token_budget must be at least 1, got {token_budget}")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = [int(i) for i in np.argsort(-lengths, kind="stable") if lengths[i] >= 2]
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Sorted descending, so the first row of a batch is its longest.
        width = int(lengths[current[0]]) if current else int(lengths[i])
        if current and (len(current) + 1) * width > token_budget:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def pad_right(rows: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, lengths) for rows padded on the right.

    Each row is padded with its own last token, not a shared pad id: a miner's model may hold
    NaN or huge weights for some token, and a pad drawn from the row itself can never bring
    into a row a value its own document did not already contain. Right padding keeps the
    default position ids (0..len-1) correct for every real token.
    """
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    width = int(lengths.max())
    ids = torch.empty((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        n = len(row)
        ids[b, :n] = torch.from_numpy(np.asarray(row, dtype=np.int64))
        ids[b, n:] = int(row[-1])
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    return ids, mask, lengths
