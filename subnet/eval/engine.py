"""Exact per-document losses, batched and with chunked cross-entropy.

Why it is fast and exact:
- Documents are scored independently: each is its own row of a right-padded batch, so
  attention never crosses documents, and under causal attention a real token never sees the
  pads that follow it. Position ids default to 0..len-1, which right padding keeps correct.
- No KV cache (`use_cache=False`) and `torch.inference_mode()`.
- The full-vocabulary logits of a batch are never materialised. The model's body gives the
  last hidden states; only positions that predict a real token are gathered and projected
  to the vocabulary `chunk_tokens` at a time, with cross-entropy in float32 per chunk and
  per-document sums accumulated in float64.

Output heads supported: a plain linear projection (`get_output_embeddings()`), optionally
followed by the final-logit transforms transformers applies for Gemma 2/3 (`final_logit_softcapping`),
Cohere (`logit_scale`) and Granite (`logits_scaling`). Before scoring, the engine checks on a
short prefix of one document that its head reproduces the model's own logits, and refuses a
model whose head does something else (`UnsupportedModel`), rather than scoring it wrongly.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from subnet.data.types import TokenizedDocuments
from subnet.eval.batching import pad_right, plan_batches
from subnet.eval.types import STATUS_FAILED, STATUS_OK, STATUS_TRUNCATED, DocLosses

log = logging.getLogger(__name__)

CPU_TOKEN_BUDGET = 1_024  # on CPU larger batches were no faster and cost memory (scripts/bench_eval.py)
CUDA_TOKEN_BUDGET = 65_536
# Bytes of float32 logits one projection chunk may hold. On CPU this keeps the engine's peak
# below a batch-size-1 full-logits scorer even for 32k+ vocabularies.
CPU_LOGITS_CHUNK_BYTES = 8 * 1024**2
CUDA_LOGITS_CHUNK_BYTES = 1024**3
HEAD_CHECK_TOKENS = 16


class UnsupportedModel(ValueError):
    """The model's structure does not let the engine compute its losses exactly."""


@dataclass
class OutputHead:
    """The model split into body (tokens -> last hidden states) and head (hidden -> logits)."""

    body: torch.nn.Module
    projection: torch.nn.Module
    transform: Callable[[torch.Tensor], torch.Tensor]
    vocab_size: int

    @classmethod
    def of(cls, model: torch.nn.Module) -> "OutputHead":
        body = getattr(model, "base_model", None)
        get_head = getattr(model, "get_output_embeddings", None)
        projection = get_head() if callable(get_head) else None
        if body is None or body is model or projection is None:
            raise UnsupportedModel(
                f"{type(model).__name__} has no separate base model and output embedding; "
                "expected a transformers *ForCausalLM / *LMHeadModel"
            )
        vocab = getattr(projection, "out_features", None) or int(projection.weight.shape[0])
        return cls(body, projection, _final_logit_transform(getattr(model, "config", None)), int(vocab))

    def hidden_states(self, ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out = self.body(input_ids=ids, attention_mask=mask, use_cache=False)
        return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.transform(self.projection(hidden).float())


def _final_logit_transform(config) -> Callable[[torch.Tensor], torch.Tensor]:
    """The logit scaling/softcapping transformers applies after the projection, if any."""
    softcap = getattr(config, "final_logit_softcapping", None)
    scale = getattr(config, "logit_scale", None)  # Cohere: multiplies
    divide = getattr(config, "logits_scaling", None)  # Granite: divides
    steps: list[Callable[[torch.Tensor], torch.Tensor]] = []
    if isinstance(scale, (int, float)) and scale != 1:
        steps.append(lambda x: x * scale)
    if isinstance(divide, (int, float)) and divide != 1:
        steps.append(lambda x: x / divide)
    if isinstance(softcap, (int, float)) and softcap:
        steps.append(lambda x: torch.tanh(x / softcap) * softcap)

    def apply(x: torch.Tensor) -> torch.Tensor:
        for step in steps:
            x = step(x)
        return x

    return apply


def default_token_budget(device: str | torch.device) -> int:
    return CUDA_TOKEN_BUDGET if torch.device(device).type == "cuda" else CPU_TOKEN_BUDGET


def default_chunk_tokens(device: str | torch.device, vocab_size: int) -> int:
    budget = CUDA_LOGITS_CHUNK_BYTES if torch.device(device).type == "cuda" else CPU_LOGITS_CHUNK_BYTES
    return max(16, budget // (4 * max(vocab_size, 1)))


def compute_losses(
    model: torch.nn.Module,
    docs: TokenizedDocuments,
    device: str | torch.device = "cpu",
    token_budget: int | None = None,
    chunk_tokens: int | None = None,
    use_padding_mask: bool = False,
    on_documents: Callable[[int], None] | None = None,
) -> DocLosses:
    """Summed NLL, predicted-token count, bytes and status for every document, in input order.

    The model must already be on `device` (the loader puts it there). A document whose loss is
    not finite is STATUS_FAILED; the others are unaffected (rows of a batch never interact).
    A CUDA out-of-memory error halves the token budget and retries, down to one document; if
    one document alone does not fit, the error propagates and costs this model only.
    By default no attention mask is passed: in a causal model a real token never attends to the
    pads after it, so the mask changes nothing for the positions we read, and without it SDPA
    takes its fused causal path (faster on CPU and GPU). `use_padding_mask=True` passes the
    padding mask anyway; the tests check both give the batch-size-1 losses.
    `on_documents(n)` is told after each batch how many documents it scored (progress bars).
    """
    device = torch.device(device)
    _check_device(model, device)
    model.eval()
    head = OutputHead.of(model)
    budget = token_budget or default_token_budget(device)
    chunk = chunk_tokens or default_chunk_tokens(device, head.vocab_size)
    lengths = [len(t) for t in docs.tokens]
    nll = np.zeros(len(docs), dtype=np.float64)
    with torch.inference_mode():
        _verify_head(model, head, docs, device)
        pending = deque(plan_batches(lengths, budget))
        while pending:
            batch = pending.popleft()
            try:
                nll[batch] = _score_batch(head, [docs.tokens[i] for i in batch], device, chunk, use_padding_mask)
                if on_documents is not None:
                    on_documents(len(batch))
            except torch.OutOfMemoryError:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                if len(batch) == 1:
                    raise
                cost = len(batch) * max(lengths[i] for i in batch)
                budget = max(1, min(budget, cost) // 2)
                log.warning("out of memory on %d documents; token budget now %d", len(batch), budget)
                sub = plan_batches([lengths[i] for i in batch], budget)
                pending.extendleft(reversed([[batch[j] for j in b] for b in sub]))
    return _assemble(docs, nll)


def _check_device(model: torch.nn.Module, device: torch.device) -> None:
    param = next(model.parameters(), None)
    if param is not None and param.device.type != device.type:
        raise ValueError(f"model is on {param.device} but scoring was asked on {device}; load it there first")


def _score_batch(
    head: OutputHead, rows: list[np.ndarray], device: torch.device, chunk: int, use_mask: bool
) -> np.ndarray:
    """Summed NLL (float64) of each row's predicted tokens."""
    ids, mask, lengths = pad_right(rows)
    ids, lengths = ids.to(device), lengths.to(device)
    hidden = head.hidden_states(ids, mask.to(device) if use_mask else None)
    width = ids.shape[1]
    predicts = torch.arange(width - 1, device=device)[None, :] < (lengths - 1)[:, None]
    states = hidden[:, :-1][predicts]  # (n_predicted, hidden): only real positions
    targets = ids[:, 1:][predicts]
    row_of = torch.arange(len(rows), device=device)[:, None].expand(-1, width - 1)[predicts]
    del hidden
    sums = torch.zeros(len(rows), dtype=torch.float64, device=device)
    for start in range(0, targets.numel(), chunk):
        end = start + chunk
        token_nll = F.cross_entropy(head.logits(states[start:end]), targets[start:end], reduction="none")
        sums.index_add_(0, row_of[start:end], token_nll.double())
    return sums.cpu().numpy()


def _verify_head(model: torch.nn.Module, head: OutputHead, docs: TokenizedDocuments, device: torch.device) -> None:
    """Refuse a model whose own logits differ from body + head (an unsupported output transform)."""
    sample = next((t for t in docs.tokens if len(t) >= 2), None)
    if sample is None:
        return
    ids = torch.as_tensor(np.asarray(sample[:HEAD_CHECK_TOKENS], dtype=np.int64), device=device)[None, :]
    expected = model(input_ids=ids, use_cache=False).logits.float()[0]
    actual = head.logits(head.hidden_states(ids, None))[0]
    low_precision = expected.dtype != torch.float32 or head.projection.weight.dtype != torch.float32
    tol = 3e-2 if low_precision else 1e-4
    scale = max(1.0, float(torch.nan_to_num(expected, nan=0.0, posinf=0.0, neginf=0.0).abs().max()))
    if not torch.allclose(actual, expected, rtol=tol, atol=tol * scale, equal_nan=True):
        raise UnsupportedModel(
            f"{type(model).__name__}: logits from its base model and output embedding differ from "
            "its own forward; its output head applies a transform this engine does not support"
        )


def _assemble(docs: TokenizedDocuments, nll: np.ndarray) -> DocLosses:
    status = np.where(np.asarray(docs.truncated, dtype=bool), STATUS_TRUNCATED, STATUS_OK).astype(np.int8)
    status[~np.isfinite(nll)] = STATUS_FAILED
    return DocLosses(
        nll_sum=nll,
        n_tokens=docs.n_predicted.astype(np.int64),
        n_bytes=np.asarray(docs.n_bytes, dtype=np.int64),
        status=status,
    )
