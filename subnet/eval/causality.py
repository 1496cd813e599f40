"""Refuse a model that sees the token it predicts: the hidden state at position t must not depend on t+1..

A language model's loss is only a measure of prediction when position t attends to positions <= t.
transformers builds a bidirectional mask when a config asks for one (`is_causal: false`, Gemma's
`use_bidirectional_attention`), and such a model reaches a loss near zero on any text without
predicting anything (scripts/generation_gamed.py: 0.04 nats where no causal model goes below 7.35).
The loader refuses those configs by name; this probe catches every other way of looking ahead
(a remapped mask, a custom layer), for the same cost as the head check: two forward passes of a
short prefix that differ only after position `split`, whose earlier hidden states must agree.
"""

from __future__ import annotations

import numpy as np
import torch

from subnet.data.types import TokenizedDocuments
from subnet.eval.head import OutputHead, UnsupportedModel

PROBE_TOKENS = 32


def _probe_ids(tokens: np.ndarray, vocab_size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """A prefix and a copy whose tokens after `split` all differ from it (same length, so same kernels)."""
    ids = np.asarray(tokens[:PROBE_TOKENS], dtype=np.int64)
    split = len(ids) // 2
    changed = ids.copy()
    changed[split:] = (ids[split:] + 1 + np.arange(len(ids) - split)) % max(2, vocab_size)
    changed[split:] = np.where(changed[split:] == ids[split:], (ids[split:] + 1) % max(2, vocab_size), changed[split:])
    return ids, changed, split


def verify_causal(head: OutputHead, docs: TokenizedDocuments, device: torch.device) -> None:
    """Raise UnsupportedModel when changing later tokens moves an earlier position's hidden state."""
    sample = next((t for t in docs.tokens if len(t) >= 4), None)
    if sample is None:
        return
    ids, changed, split = _probe_ids(sample, head.vocab_size)
    with torch.no_grad():  # one row at a time: the smallest passes, the same kernels for both
        raw = [head.hidden_states(torch.as_tensor(row, device=device)[None, :], None) for row in (ids, changed)]
    before, after = raw[0][0, :split].float(), raw[1][0, :split].float()
    scale = max(1.0, float(torch.nan_to_num(before, nan=0.0, posinf=0.0, neginf=0.0).abs().max()))
    low_precision = raw[0].dtype != torch.float32 or head.projection.weight.dtype != torch.float32
    tol = 3e-2 if low_precision else 1e-4
    if not torch.allclose(after, before, rtol=tol, atol=tol * scale, equal_nan=True):
        moved = int((~torch.isclose(after, before, rtol=tol, atol=tol * scale, equal_nan=True)).any(-1).sum())
        raise UnsupportedModel(
            f"not causal: changing tokens after position {split} changed the hidden states of {moved} earlier "
            "position(s); a language model may attend only to the tokens before the one it predicts")
