"""The engine's losses equal a plain batch-size-1, full-logits computation, document by document."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from subnet.eval.batching import pad_right, plan_batches
from subnet.eval.engine import OutputHead, UnsupportedModel, compute_losses
from subnet.eval.types import STATUS_FAILED, STATUS_OK, STATUS_TRUNCATED
from tests.eval_loaders import random_docs, tiny_model

RAGGED = [1, 2, 3, 5, 17, 64, 100, 101, 150, 299, 300, 7, 250, 33]


def reference_nll(model, tokens) -> float:
    """What a simple scorer does: one document, full logits, cross-entropy summed over it."""
    if len(tokens) < 2:
        return 0.0
    ids = torch.as_tensor(tokens, dtype=torch.long)[None]
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()[0]
    return float(F.cross_entropy(logits[:-1], ids[0, 1:], reduction="sum"))


def assert_matches_reference(model, docs, losses, rel=1e-5):
    expected = np.array([reference_nll(model, t) for t in docs.tokens])
    np.testing.assert_allclose(losses.nll_sum, expected, rtol=rel, atol=1e-9)
    assert losses.nll_sum.dtype == np.float64


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2", "gemma2"])
def test_ragged_batches_match_batch_size_one(arch):
    model = tiny_model(arch)
    docs = random_docs(RAGGED, seed=1)
    losses = compute_losses(model, docs, token_budget=700, chunk_tokens=97)
    assert_matches_reference(model, docs, losses)
    np.testing.assert_array_equal(losses.n_tokens, [max(n - 1, 0) for n in RAGGED])
    np.testing.assert_array_equal(losses.n_bytes, docs.n_bytes)
    assert (losses.status == STATUS_OK).all()
    one_token = RAGGED.index(1)
    assert losses.nll_sum[one_token] == 0 and losses.n_tokens[one_token] == 0
    assert np.isnan(losses.per_token()[one_token])
    # Losses really differ between documents (the comparison above is not trivially true).
    assert np.ptp(losses.per_token()[losses.n_tokens > 0]) > 0.05


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_with_padding_mask_is_also_exact(arch):
    model = tiny_model(arch)
    docs = random_docs(RAGGED, seed=2)
    losses = compute_losses(model, docs, token_budget=900, use_padding_mask=True)
    assert_matches_reference(model, docs, losses)


def test_token_budget_smaller_than_one_document():
    model = tiny_model("qwen2")
    docs = random_docs([300, 120, 40, 2], seed=3)
    losses = compute_losses(model, docs, token_budget=50)
    assert_matches_reference(model, docs, losses)


def test_chunk_size_does_not_change_losses():
    model = tiny_model("llama")
    docs = random_docs([90, 60, 31], seed=4)
    one = compute_losses(model, docs, chunk_tokens=1)
    small = compute_losses(model, docs, chunk_tokens=7)
    whole = compute_losses(model, docs, chunk_tokens=10**6)
    np.testing.assert_allclose(small.nll_sum, whole.nll_sum, rtol=1e-6)
    np.testing.assert_allclose(one.nll_sum, whole.nll_sum, rtol=1e-6)


def test_head_projection_equals_full_logits():
    model = tiny_model("gemma2")  # final logit softcapping: the head must apply it
    ids = torch.randint(0, 256, (1, 40))
    head = OutputHead.of(model)
    with torch.no_grad():
        full = model(input_ids=ids).logits.float()
        chunked = head.logits(head.hidden_states(ids, None))
    torch.testing.assert_close(chunked, full, rtol=1e-5, atol=1e-5)


def test_unknown_output_transform_is_refused():
    model = tiny_model("llama")
    model.config.final_logit_softcapping = 1.0  # Llama's forward ignores it; the head would not
    with pytest.raises(UnsupportedModel, match="output head"):
        compute_losses(model, random_docs([20, 10]))


def test_nan_weights_fail_only_the_documents_they_touch():
    model = tiny_model("llama")
    docs = random_docs([80, 60, 60, 40, 5], seed=5)
    poison = int(docs.tokens[1][10])
    clean = [i for i, t in enumerate(docs.tokens) if poison not in t]
    assert clean and 1 not in clean
    with torch.no_grad():
        model.model.embed_tokens.weight[poison] = float("nan")
    losses = compute_losses(model, docs, token_budget=10_000)
    assert losses.status[1] == STATUS_FAILED
    assert (losses.status[clean] == STATUS_OK).all()
    expected = np.array([reference_nll(model, docs.tokens[i]) for i in clean])
    np.testing.assert_allclose(losses.nll_sum[clean], expected, rtol=1e-5)
    assert np.isnan(losses.per_token()[1])


def test_all_nan_model_fails_every_document_without_raising():
    model = tiny_model("gpt2")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    losses = compute_losses(model, random_docs([30, 20, 1]))
    assert list(losses.status[:2]) == [STATUS_FAILED, STATUS_FAILED]
    assert np.isnan(losses.per_token()).all()


def test_truncated_documents_are_marked():
    model = tiny_model("llama")
    docs = random_docs([50, 40, 30], truncated=[True, False, True])
    losses = compute_losses(model, docs)
    assert list(losses.status) == [STATUS_TRUNCATED, STATUS_OK, STATUS_TRUNCATED]
    assert_matches_reference(model, docs, losses)


def test_out_of_memory_halves_the_budget_and_retries():
    """CUDA OOM has no CPU stand-in: a hook raises it for batches above a size, as a small GPU would."""
    model = tiny_model("llama")
    docs = random_docs([120, 100, 90, 80, 70, 60, 50, 3], seed=6)
    seen = []

    def small_gpu(module, args, kwargs):
        ids = kwargs["input_ids"]
        seen.append(ids.shape[0])
        if ids.numel() > 250:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    handle = model.model.register_forward_pre_hook(small_gpu, with_kwargs=True)
    losses = compute_losses(model, docs, token_budget=4_000)
    handle.remove()
    assert seen[4] == len(docs)  # the whole round in one batch first (seen[:4]: the head check, the causality probe)
    assert len(seen) < 20
    assert_matches_reference(model, docs, losses)

    handle = model.model.register_forward_pre_hook(small_gpu, with_kwargs=True)
    with pytest.raises(torch.OutOfMemoryError):
        compute_losses(model, random_docs([300, 10]), token_budget=4_000)
    handle.remove()


def test_model_on_other_device_is_a_clear_error():
    with pytest.raises(ValueError, match="load it there first"):
        compute_losses(tiny_model("llama"), random_docs([5]), device="meta")


def test_plan_batches_respects_budget_and_covers_every_document():
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 400, size=500)
    batches = plan_batches(lengths, 2_000)
    covered = sorted(i for b in batches for i in b)
    assert covered == [i for i in range(500) if lengths[i] >= 2]
    for b in batches:
        widths = [lengths[i] for i in b]
        assert len(b) == 1 or len(b) * max(widths) <= 2_000
    assert plan_batches([500, 3], 10) == [[0], [1]]


def test_pad_right_pads_each_row_with_its_own_last_token():
    ids, mask, lengths = pad_right([np.array([5, 6, 7]), np.array([9])])
    assert ids.tolist() == [[5, 6, 7], [9, 9, 9]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert lengths.tolist() == [3, 1]
