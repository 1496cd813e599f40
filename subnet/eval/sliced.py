"""Sliced evaluation: score a model too large for the device, one slice of layers at a time.

A competition opts in (`Competition.sliced_eval`); the worker then scores sliced every model whose
bf16 weights exceed `slice_above_share` x the device's memory (`should_slice`). The batches are
planned exactly as `compute_losses` plans them (padded or packed), every batch goes through one
slice before the next slice is loaded (subnet/eval/sliced_model.py), and the per-document float64
sums come from the engine's own `_Scorer`, so the numbers are those of the unsliced engine.

Differences from the unsliced engine: no out-of-memory split of a batch (a batch that does not fit
next to one slice fails the model, 'memory_limit'), and the output-head check (`verify_head`) is
replaced by the architecture allowlist (`SLICEABLE`), whose heads are plain projections.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from subnet.data.types import TokenizedDocuments
from subnet.eval import engine
from subnet.eval.batching import plan_batches
from subnet.eval.packing import block_for, flatten_for_varlen, plan_packed
from subnet.eval.sliced_model import SlicedModel
from subnet.eval.token_loss import default_chunk_tokens
from subnet.eval.types import DocLosses

log = logging.getLogger(__name__)

BF16_BYTES = 2


def device_memory_bytes(device: str | torch.device, override: int | None = None) -> int | None:
    """The memory sliced evaluation sizes against: `override` when given (tests, operators), the GPU's
    total memory on CUDA, None on CPU (no automatic slicing: CPU workers are capped by RLIMIT_AS)."""
    if override:
        return int(override)
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    return None


def should_slice(competition, n_params: int, memory_bytes: int | None) -> bool:
    """Sliced when the competition allows it and the model's bf16 size is above its share of memory."""
    if not getattr(competition, "sliced_eval", False) or not memory_bytes:
        return False
    return BF16_BYTES * int(n_params) > competition.slice_above_share * memory_bytes


def open_sliced(model_dir: str | Path, competition, device: str | torch.device, dtype: torch.dtype,
                memory_override: int | None = None) -> SlicedModel | None:
    """The checked model directory as a SlicedModel when it must be scored sliced (`should_slice`), else
    None. Every check of the loader runs first; no weight is read yet. A slice holds at most
    `slice_above_share` x the device's memory of weights (and at least one layer)."""
    memory = device_memory_bytes(device, memory_override)
    if not getattr(competition, "sliced_eval", False) or memory is None:
        return None
    from subnet.hub.loading import inspect_model

    cls, config, meta_model, files, info = inspect_model(model_dir, competition)
    del meta_model
    if not should_slice(competition, info.n_params, memory):
        return None
    slice_bytes = int(competition.slice_above_share * memory)
    log.info("%s: %.2f GB in bf16 is above %.0f%% of %.2f GB; scoring it sliced", model_dir,
             BF16_BYTES * info.n_params / 1e9, 100 * competition.slice_above_share, memory / 1e9)
    return SlicedModel(cls, config, files, torch.device(device), dtype, slice_bytes)


def compute_losses_sliced(
    sliced: SlicedModel, docs: TokenizedDocuments, token_budget: int | None = None, layout: str = "auto",
    block_tokens: int | None = None, chunk_tokens: int | None = None, use_padding_mask: bool = False,
) -> DocLosses:
    """compute_losses for a SlicedModel: same plan, same sums, the body run slice by slice."""
    if layout not in engine.LAYOUTS:
        raise ValueError(f"layout must be one of {engine.LAYOUTS}, got {layout!r}")
    device, head = sliced.device, sliced.head
    budget = token_budget or engine.default_token_budget(device)
    layout = engine.default_layout(device) if layout == "auto" else layout
    if layout == "packed" and device.type == "cuda":
        engine._prefer_varlen_attention(sliced.model)  # flash varlen when installed: rows flattened below
    scorer = engine._Scorer(sliced.model, head, device, chunk_tokens or default_chunk_tokens(device, head.vocab_size))
    nll = np.zeros(len(docs), dtype=np.float64)
    with torch.inference_mode():
        if layout == "packed":
            if _score_packed(sliced, scorer, docs, nll, budget, block_tokens):
                # Non-finite documents alone, as the engine does (one more pass, only when a model has NaN).
                bad = [int(i) for i in np.flatnonzero(~np.isfinite(nll))]
                if bad:
                    _score_padded(sliced, scorer, docs, nll, [[i] for i in bad], False)
            else:
                log.warning("%s ignores packed position ids; scoring padded rows instead", type(sliced.model).__name__)
                layout = "padded"
        if layout == "padded":
            plan = plan_batches([len(t) for t in docs.tokens], budget)
            _score_padded(sliced, scorer, docs, nll, plan, use_padding_mask)
    return engine._assemble(docs, nll)


def _score_padded(sliced: SlicedModel, scorer, docs: TokenizedDocuments, nll: np.ndarray,
                  plan: list[list[int]], use_mask: bool) -> None:
    rows = [[docs.tokens[i] for i in batch] for batch in plan]
    inputs = [scorer.padded_inputs(r, use_mask) for r in rows]

    def finish(b: int, hidden: torch.Tensor) -> None:
        nll[plan[b]] = scorer.padded_sums(rows[b], inputs[b].ids, hidden)

    sliced.run(inputs, finish)


def _score_packed(sliced: SlicedModel, scorer, docs: TokenizedDocuments, nll: np.ndarray, budget: int,
                  block_tokens: int | None) -> bool:
    """Packed batches and the engine's packing probe in one pass; False (nothing scored) if the probe fails."""
    lengths = [len(t) for t in docs.tokens]
    block = block_tokens or block_for(lengths)
    plan = plan_packed(lengths, block, max(1, budget // block))
    packed = [scorer.packed_inputs(docs.tokens, batch) for batch in plan]
    probe = engine.packing_probe_inputs(docs)
    inputs = [_flat(p[0]) if scorer.varlen else p[0] for p in packed] + list(probe or ())
    probe_states: list[torch.Tensor] = []
    sums: dict[int, float] = {}

    def finish(b: int, hidden: torch.Tensor) -> None:
        if b >= len(plan):
            probe_states.append(hidden.to("cpu"))
            return
        batch_inputs, doc_of, predicts = packed[b]
        hidden = hidden.reshape(*batch_inputs.ids.shape, -1)  # undoes _flat
        sums.update(scorer.packed_sums(docs.tokens, plan[b], batch_inputs.ids, doc_of, predicts, hidden))

    sliced.run(inputs, finish)
    low_precision = sliced.dtype != torch.float32
    if probe_states and not engine.packing_probe_passes(*probe_states, low_precision):
        return False
    for i, value in sums.items():
        nll[i] = value
    return True


def _flat(inputs: engine.BodyInputs) -> engine.BodyInputs:
    """All rows as one: transformers' flash-attention path finds packed documents only in a single row."""
    ids, pos = flatten_for_varlen(inputs.ids, inputs.position_ids)
    return engine.BodyInputs(ids, None, pos)
