"""Per-token negative log-likelihood from last hidden states, without full-vocabulary logits.

Two ways, same numbers up to float rounding:
- chunked (every device): project `chunk_tokens` positions at a time to the vocabulary, float32
  cross-entropy per chunk. The chunk is measured in tokens, not bytes: a byte-sized chunk shrinks
  to a few dozen tokens at a 50k vocabulary and the per-chunk overhead then dominates on CPU.
- fused (CUDA only, when the optional `gpu` extra's Liger Kernel is importable and the head is a
  plain bias-free linear layer, optionally softcapped): Liger's fused linear cross-entropy, which
  projects and reduces in one pass per chunk. Never used on CPU (Triton kernels).

Sums per document are the caller's job and stay float64.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Callable

import torch
import torch.nn.functional as F

from subnet.eval.head import OutputHead

log = logging.getLogger(__name__)

# Tokens per projection chunk. On CPU 1024 tokens removed the 1.6x gap a 41-token (8 MiB) chunk
# left at a 50k vocabulary; larger chunks were no faster (scripts/bench_eval.py --chunk-tokens).
CPU_CHUNK_TOKENS = 1024
# ... but never more float32 logits than this: a competition bounds parameters, not the vocabulary, and
# a 20M-token vocabulary (hidden size 1, within tiny's limit) made a 1024-token chunk 80 GB. Below
# ~130k tokens of vocabulary the token count binds, as before.
CPU_LOGITS_CHUNK_BYTES = 512 * 1024**2
# On CUDA the chunk is sized by the float32 logits it may hold: about 2,600 tokens at 100k.
CUDA_LOGITS_CHUNK_BYTES = 1024**3
FUSED_ENV = "SUBNET_EVAL_FUSED_CE"  # "0" turns the fused kernel off (e.g. to compare paths)


def default_chunk_tokens(device: str | torch.device, vocab_size: int) -> int:
    """Positions projected at once: their float32 logits (and cross-entropy's copy) stay within the
    device's chunk bytes at any vocabulary (one position at least)."""
    row_bytes = 4 * max(vocab_size, 1)
    if torch.device(device).type == "cuda":
        return max(1, CUDA_LOGITS_CHUNK_BYTES // row_bytes)
    return max(1, min(CPU_CHUNK_TOKENS, CPU_LOGITS_CHUNK_BYTES // row_bytes))


def chunked_token_nll(head: OutputHead, states: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
    """float32 NLL per position, projecting `chunk` positions at a time."""
    out = torch.empty(targets.numel(), dtype=torch.float32, device=states.device)
    for start in range(0, targets.numel(), chunk):
        end = start + chunk
        out[start:end] = F.cross_entropy(head.logits(states[start:end]), targets[start:end], reduction="none")
    return out


def fused_token_nll_fn(head: OutputHead, device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """Liger's fused linear cross-entropy for this head on this device, or None where it cannot serve."""
    if device.type != "cuda" or os.environ.get(FUSED_ENV, "1") == "0" or not head.is_plain_linear:
        return None
    try:
        ops = importlib.import_module("liger_kernel.ops")
        fused = ops.LigerFusedLinearCrossEntropyFunction
    except (ImportError, AttributeError) as exc:
        log.debug("fused cross-entropy unavailable (%s); using the chunked path", exc)
        return None
    weight, softcap = head.projection.weight, head.softcap

    def token_nll(states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # Positional call, as Liger's own LigerFusedLinearCrossEntropyLoss.forward makes it:
        # (input, weight, target, bias, ce_weight, ignore_index, lse_square_scale, label_smoothing,
        #  reduction, softcap, return_z_loss, accum_dtype, ...).
        loss, *_ = fused.apply(
            states.contiguous(), weight, targets.contiguous(), None, None, -100, 0.0, 0.0, "none", softcap, False,
            None,
        )
        return loss.float()

    return token_nll
