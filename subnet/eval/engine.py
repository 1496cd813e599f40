"""Exact per-document losses: batched forward passes, vocabulary projected only where needed.

Why it is fast and exact:
- Documents are scored independently. Two layouts, chosen per device by measurement
  (scripts/bench_eval.py), both exact against batch size 1:
  * packed (CUDA default, subnet/eval/packing.py): documents back to back in fixed-size blocks
    with per-document position ids, attention block-diagonal, so no FLOP is spent on padding
    and every batch has the same shape;
  * padded (CPU default, subnet/eval/batching.py): length-sorted rows, right-padded; under
    causal attention a real token never sees the pads that follow it. On CPU the fused causal
    SDPA path of padded rows is faster than a materialised block-diagonal mask.
- No KV cache (`use_cache=False`) and `torch.inference_mode()`.
- The full-vocabulary logits of a batch are never materialised: only positions that predict a
  real token are projected (subnet/eval/token_loss.py: chunked, or fused on CUDA), and
  per-document sums accumulate in float64.

Validators agree: the batch plan is a pure function of the documents and the configured token
budget (a constant per device type, never free memory). A CUDA out-of-memory error splits the
failing batch (rows, never the documents in a row) and retries; the only change that can cause
is in the floating-point rounding of low-precision kernels whose choice depends on batch shape
(measured by scripts/eval_agreement.py and documented in the README).
"""

from __future__ import annotations

import importlib.util
import logging
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from subnet.data.types import TokenizedDocuments
from subnet.eval.batching import pad_right, plan_batches
from subnet.eval.causality import verify_causal
from subnet.eval.head import OutputHead, UnsupportedModel, verify_head
from subnet.eval.packing import PackedBatch, block_for, flatten_for_varlen, pack_rows, plan_packed
from subnet.eval.token_loss import chunked_token_nll, default_chunk_tokens, fused_token_nll_fn
from subnet.eval.types import STATUS_FAILED, STATUS_OK, STATUS_TRUNCATED, DocLosses

log = logging.getLogger(__name__)

__all__ = ["OutputHead", "UnsupportedModel", "compute_losses", "default_layout", "default_token_budget"]

CPU_TOKEN_BUDGET = 1_024  # on CPU larger batches were no faster and cost memory (scripts/bench_eval.py)
CUDA_TOKEN_BUDGET = 65_536
LAYOUTS = ("auto", "packed", "padded")
PACKING_CHECK_TOKENS = 12
# Largest relative change of a hidden state the packing probe accepts (see _packing_is_exact).
PACKING_TOL_HALF = 0.1
PACKING_TOL_FLOAT32 = 1e-3


def default_token_budget(device: str | torch.device) -> int:
    return CUDA_TOKEN_BUDGET if torch.device(device).type == "cuda" else CPU_TOKEN_BUDGET


def default_layout(device: str | torch.device) -> str:
    """Packed on CUDA (no padding FLOPs, flash varlen kernels); padded on CPU, where it measured faster."""
    return "packed" if torch.device(device).type == "cuda" else "padded"


@dataclass
class BodyInputs:
    """One forward pass's inputs, on the host: what the body sees for a padded or packed batch."""

    ids: torch.Tensor
    mask: torch.Tensor | None = None
    position_ids: torch.Tensor | None = None


class _Scorer:
    """Per-document float64 NLL sums for one model: forward the body, then the token losses.

    Each layout is split into inputs, body and sums, so that the sliced runner (subnet/eval/sliced.py)
    can run the body layer slice by layer slice and still compute its sums here, exactly as now.
    """

    def __init__(self, model: torch.nn.Module, head: OutputHead, device: torch.device, chunk: int):
        self.head, self.device, self.chunk = head, device, chunk
        self.fused = fused_token_nll_fn(head, device)
        impl = str(getattr(getattr(model, "config", None), "_attn_implementation", "") or "")
        self.varlen = impl.startswith("flash_attention")  # transformers' varlen path wants one row

    def token_nll(self, states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.fused(states, targets)
        return chunked_token_nll(self.head, states, targets, self.chunk)

    def body(self, inputs: BodyInputs) -> torch.Tensor:
        """Last hidden states (batch, width, hidden) on the device."""
        ids, pos = inputs.ids.to(self.device), inputs.position_ids
        mask = inputs.mask.to(self.device) if inputs.mask is not None else None
        if pos is not None and self.varlen:
            flat_ids, flat_pos = flatten_for_varlen(ids, pos.to(self.device))
            return self.head.hidden_states(flat_ids, None, flat_pos).reshape(*ids.shape, -1)
        return self.head.hidden_states(ids, mask, pos.to(self.device) if pos is not None else None)

    @staticmethod
    def padded_inputs(rows: list[np.ndarray], use_mask: bool) -> BodyInputs:
        ids, mask, _ = pad_right(rows)
        return BodyInputs(ids, mask if use_mask else None)

    def padded_sums(self, rows: list[np.ndarray], ids: torch.Tensor, hidden: torch.Tensor) -> np.ndarray:
        ids = ids.to(self.device)
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.long, device=self.device)
        width = ids.shape[1]
        predicts = torch.arange(width - 1, device=self.device)[None, :] < (lengths - 1)[:, None]
        row_of = torch.arange(len(rows), device=self.device)[:, None].expand(-1, width - 1)[predicts]
        states = hidden[:, :-1][predicts]  # (n_predicted, hidden): only real positions
        del hidden  # freed before the vocabulary projection
        return self._sums(states, ids[:, 1:][predicts], row_of, len(rows))

    def padded(self, rows: list[np.ndarray], use_mask: bool) -> np.ndarray:
        inputs = self.padded_inputs(rows, use_mask)
        return self.padded_sums(rows, inputs.ids, self.body(inputs))

    @staticmethod
    def packed_inputs(docs: list[np.ndarray], batch: PackedBatch) -> tuple[BodyInputs, torch.Tensor, torch.Tensor]:
        """(inputs, doc_of, predicts) of a packed batch (see packing.pack_rows)."""
        ids, pos, doc_of, predicts = pack_rows(docs, batch.rows, batch.width)
        return BodyInputs(ids, None, pos), doc_of, predicts

    def packed_sums(
        self, docs: list[np.ndarray], batch: PackedBatch, ids: torch.Tensor, doc_of: torch.Tensor,
        predicts: torch.Tensor, hidden: torch.Tensor,
    ) -> dict[int, float]:
        members = sorted({d for row in batch.rows for d in row})
        local = torch.full((len(docs),), -1, dtype=torch.long)
        local[members] = torch.arange(len(members))
        where = predicts.to(self.device)
        states = hidden[where]
        del hidden
        targets = torch.roll(ids.to(self.device), -1, dims=1)[where]
        sums = self._sums(states, targets, local[doc_of[predicts]].to(self.device), len(members))
        return dict(zip(members, sums.tolist()))

    def packed(self, docs: list[np.ndarray], batch: PackedBatch) -> dict[int, float]:
        inputs, doc_of, predicts = self.packed_inputs(docs, batch)
        return self.packed_sums(docs, batch, inputs.ids, doc_of, predicts, self.body(inputs))

    def _sums(self, states: torch.Tensor, targets: torch.Tensor, owner: torch.Tensor, n: int) -> np.ndarray:
        # Summed on the CPU, in order: float64 index_add_ on CUDA uses atomics, whose order (and so the
        # last bits of a sum) changes from run to run, and validators must agree.
        nll = self.token_nll(states, targets).double().cpu()
        sums = torch.zeros(n, dtype=torch.float64)
        sums.index_add_(0, owner.cpu(), nll)
        return sums.numpy()


def compute_losses(
    model: torch.nn.Module,
    docs: TokenizedDocuments,
    device: str | torch.device = "cpu",
    token_budget: int | None = None,
    chunk_tokens: int | None = None,
    use_padding_mask: bool = False,
    layout: str = "auto",
    block_tokens: int | None = None,
    on_documents: Callable[[int], None] | None = None,
) -> DocLosses:
    """Summed NLL, predicted-token count, bytes and status for every document, in input order.

    The model must already be on `device` (the loader puts it there). A document whose loss is
    not finite is STATUS_FAILED; the others are unaffected. `layout` is 'packed', 'padded' or
    'auto' (default_layout); `block_tokens` is the packed row width (default: the longest
    document, rounded up), `token_budget` the tokens per forward pass. A CUDA out-of-memory error
    splits the failing batch and retries; if one row alone does not fit, the error propagates
    and costs this model only. The padded path passes no attention mask by default (a real
    token never attends to the pads after it; without it SDPA takes its fused causal path).
    `on_documents(n)` is told after each batch how many documents it scored (progress bars).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    device = torch.device(device)
    _check_device(model, device)
    model.eval()
    head = OutputHead.of(model)
    budget = token_budget or default_token_budget(device)
    layout = default_layout(device) if layout == "auto" else layout
    if layout == "packed" and device.type == "cuda":
        _prefer_varlen_attention(model)
    scorer = _Scorer(model, head, device, chunk_tokens or default_chunk_tokens(device, head.vocab_size))
    nll = np.zeros(len(docs), dtype=np.float64)
    with torch.inference_mode():
        verify_head(model, head, docs, device)
        verify_causal(head, docs, device)
        if layout == "packed" and not _packing_is_exact(scorer, docs):
            log.warning("%s ignores packed position ids; scoring padded rows instead", type(model).__name__)
            layout = "padded"
        if layout == "packed":
            _score_packed(scorer, docs, nll, budget, block_tokens, on_documents)
            # A non-finite value in one document can reach the others of its row through masked
            # attention (0 * NaN); score those documents alone so only the cause fails.
            for i in np.flatnonzero(~np.isfinite(nll)):
                nll[i] = scorer.padded([docs.tokens[i]], False)[0]
        else:
            _score_padded(scorer, docs, nll, budget, use_padding_mask, on_documents)
    return _assemble(docs, nll)


def _score_padded(
    scorer: _Scorer, docs: TokenizedDocuments, nll: np.ndarray, budget: int, use_mask: bool,
    on_documents: Callable[[int], None] | None,
) -> None:
    lengths = [len(t) for t in docs.tokens]
    pending = deque(plan_batches(lengths, budget))
    while pending:
        batch = pending.popleft()
        try:
            nll[batch] = scorer.padded([docs.tokens[i] for i in batch], use_mask)
            if on_documents is not None:
                on_documents(len(batch))
        except torch.OutOfMemoryError:
            _release(scorer.device)
            if len(batch) == 1:
                raise
            cost = len(batch) * max(lengths[i] for i in batch)
            budget = max(1, min(budget, cost) // 2)
            log.warning("out of memory on %d documents; token budget now %d", len(batch), budget)
            sub = plan_batches([lengths[i] for i in batch], budget)
            pending.extendleft(reversed([[batch[j] for j in b] for b in sub]))


def _score_packed(
    scorer: _Scorer, docs: TokenizedDocuments, nll: np.ndarray, budget: int, block_tokens: int | None,
    on_documents: Callable[[int], None] | None,
) -> None:
    lengths = [len(t) for t in docs.tokens]
    block = block_tokens or block_for(lengths)
    pending = deque(plan_packed(lengths, block, max(1, budget // block)))
    while pending:
        batch = pending.popleft()
        try:
            scored = scorer.packed(docs.tokens, batch)
            for i, value in scored.items():
                nll[i] = value
            if on_documents is not None:
                on_documents(len(scored))
        except torch.OutOfMemoryError:
            _release(scorer.device)
            if len(batch.rows) == 1:
                raise
            half = len(batch.rows) // 2
            log.warning("out of memory on %d packed rows; retrying as %d + %d", len(batch.rows), half, len(batch.rows) - half)
            pending.extendleft([PackedBatch(batch.rows[half:], batch.width), PackedBatch(batch.rows[:half], batch.width)])


def _packing_is_exact(scorer: _Scorer, docs: TokenizedDocuments) -> bool:
    """Two document prefixes packed in one row must give the hidden states they give alone: a model
    whose attention ignores packed position ids would let the second see the first.

    Hidden states, not losses, are compared: a leak moves the second document's states by 60-160%
    (relative L2 per position) while rounding moves them by at most 0.8% in bf16 and 6e-7 in float32
    (tiny Llama, Qwen2 and Gemma 2 on CPU), so one tolerance per precision separates the two by more
    than 6x on each side. The summed loss the probe compared before moved as little as 0.02% under a
    leak in bf16, inside its 3% tolerance.
    """
    inputs = packing_probe_inputs(docs)
    if inputs is None:
        return True
    packed, alone = (scorer.body(x) for x in inputs)
    return packing_probe_passes(packed, alone, scorer.head.projection.weight.dtype != torch.float32)


def packing_probe_inputs(docs: TokenizedDocuments) -> tuple[BodyInputs, BodyInputs] | None:
    """Two document prefixes packed in one row, and the second alone; None when there are not two."""
    sample = [np.asarray(t[:PACKING_CHECK_TOKENS]) for t in docs.tokens if len(t) >= 2][:2]
    if len(sample) < 2:
        return None
    ids, pos, _, _ = pack_rows(sample, ((0, 1),), sum(len(s) for s in sample))
    return BodyInputs(ids, None, pos), BodyInputs(torch.as_tensor(sample[1], dtype=torch.long)[None])


def packing_probe_passes(packed: torch.Tensor, alone: torch.Tensor, low_precision: bool) -> bool:
    """The probe's verdict from the hidden states of packing_probe_inputs (packed row, then alone)."""
    packed = packed[0, packed.shape[1] - alone.shape[1]:].float()
    alone = alone[0].float()
    if not (torch.isfinite(packed).all() and torch.isfinite(alone).all()):
        return True  # NaN is judged per document later
    moved = float(((packed - alone).norm(dim=-1) / alone.norm(dim=-1).clamp_min(1e-30)).max())
    return moved <= (PACKING_TOL_HALF if low_precision else PACKING_TOL_FLOAT32)


def _prefer_varlen_attention(model: torch.nn.Module) -> None:
    """flash-attention's variable-length kernels when installed: attention FLOPs only inside each
    document (SDPA with a block-diagonal mask computes the masked blocks too). The packing probe
    still checks the result, and any failure to switch keeps the loader's SDPA."""
    config = getattr(model, "config", None)
    if config is None or str(getattr(config, "_attn_implementation", "")).startswith("flash_attention"):
        return
    param = next(model.parameters(), None)
    if param is None or param.dtype not in (torch.bfloat16, torch.float16) or importlib.util.find_spec("flash_attn") is None:
        return  # flash-attention kernels take half precision only
    try:
        model.set_attn_implementation("flash_attention_2")
    except Exception as exc:  # noqa: BLE001 - an architecture without flash support keeps SDPA
        log.info("flash_attention_2 unavailable for %s (%s); keeping %s", type(model).__name__, exc,
                 config._attn_implementation)


def _release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _check_device(model: torch.nn.Module, device: torch.device) -> None:
    """The model must be where tensors sent to `device` land (`cuda` lands on the current GPU)."""
    param = next(model.parameters(), None)
    if param is not None and param.device.type != torch.empty(0, device=device).device.type:
        raise ValueError(f"model is on {param.device} but scoring was asked on {device}; load it there first")


def _assemble(docs: TokenizedDocuments, nll: np.ndarray) -> DocLosses:
    status = np.where(np.asarray(docs.truncated, dtype=bool), STATUS_TRUNCATED, STATUS_OK).astype(np.int8)
    status[~np.isfinite(nll)] = STATUS_FAILED
    return DocLosses(
        nll_sum=nll,
        n_tokens=docs.n_predicted.astype(np.int64),
        n_bytes=np.asarray(docs.n_bytes, dtype=np.int64),
        status=status,
    )
