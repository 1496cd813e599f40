"""The packed layout: exact against batch size 1, documents never see each other, a pure plan."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import transformers.masking_utils

from subnet.eval.engine import compute_losses
from subnet.eval.packing import block_for, pack_rows, plan_packed
from subnet.eval.types import STATUS_FAILED, STATUS_OK
from tests.eval_loaders import random_docs, tiny_model
from tests.test_eval_engine import RAGGED, assert_matches_reference, reference_nll


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3", "mistral", "gpt2"])
@pytest.mark.parametrize("block", [None, 128])  # 128: the 150-300 token documents are longer than the block
def test_packed_matches_batch_size_one(arch, block):
    model = tiny_model(arch)
    docs = random_docs(RAGGED, seed=1)
    losses = compute_losses(model, docs, layout="packed", block_tokens=block, token_budget=700, chunk_tokens=97)
    assert_matches_reference(model, docs, losses)
    assert (losses.status == STATUS_OK).all()
    assert np.ptp(losses.per_token()[losses.n_tokens > 0]) > 0.05


def test_packed_with_sliding_window_attention_is_exact():
    model = tiny_model("mistral", sliding_window=24)  # shorter than most documents
    docs = random_docs([90, 60, 31, 140, 2], seed=7)
    assert_matches_reference(model, docs, compute_losses(model, docs, layout="packed", token_budget=512))


def test_rows_really_hold_several_documents():
    """The exactness above means something only if documents share rows: check the plan."""
    lengths = [len(t) for t in random_docs(RAGGED).tokens]
    batches = plan_packed(lengths, block_for(lengths), rows_per_batch=2)
    assert max(len(row) for b in batches for row in b.rows) >= 3


def test_a_model_that_ignores_packed_positions_is_scored_padded(monkeypatch, caplog):
    """Without transformers' packed-sequence detection documents in a row would attend to each
    other; the engine notices on a probe and falls back to the padded layout."""
    monkeypatch.setattr(transformers.masking_utils, "find_packed_sequence_indices", lambda position_ids: None)
    model = tiny_model("llama")
    docs = random_docs([40, 30, 20, 10], seed=8)
    with caplog.at_level(logging.WARNING, logger="subnet.eval.engine"):
        losses = compute_losses(model, docs, layout="packed")
    assert "ignores packed position ids" in caplog.text
    assert_matches_reference(model, docs, losses)


def test_nan_in_one_document_does_not_leak_to_its_row():
    model = tiny_model("llama")
    docs = random_docs([80, 60, 60, 40, 5], seed=5)
    poison = int(docs.tokens[1][10])
    clean = [i for i, t in enumerate(docs.tokens) if poison not in t]
    assert clean and 1 not in clean
    with torch.no_grad():
        model.model.embed_tokens.weight[poison] = float("nan")
    losses = compute_losses(model, docs, layout="packed", block_tokens=256)
    assert losses.status[1] == STATUS_FAILED
    assert (losses.status[clean] == STATUS_OK).all()
    expected = np.array([reference_nll(model, docs.tokens[i]) for i in clean])
    np.testing.assert_allclose(losses.nll_sum[clean], expected, rtol=1e-5)


def test_out_of_memory_splits_rows_and_keeps_results():
    model = tiny_model("llama")
    docs = random_docs([120, 100, 90, 80, 70, 60, 50, 3], seed=6)
    seen = []

    def small_gpu(module, args, kwargs):
        seen.append(kwargs["input_ids"].shape)
        if kwargs["input_ids"].shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    baseline = compute_losses(model, docs, layout="packed", block_tokens=128, token_budget=10_000)
    handle = model.model.register_forward_pre_hook(small_gpu, with_kwargs=True)
    losses = compute_losses(model, docs, layout="packed", block_tokens=128, token_budget=10_000)
    handle.remove()
    assert any(shape[0] > 1 for shape in seen) and seen[-1][0] == 1
    np.testing.assert_array_equal(losses.nll_sum, baseline.nll_sum)  # same rows, same numbers (float32, CPU)
    assert_matches_reference(model, docs, losses)


def test_plan_covers_every_document_once_within_the_block():
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 400, size=500)
    batches = plan_packed(lengths, 300, rows_per_batch=4)
    placed = [d for b in batches for row in b.rows for d in row]
    assert sorted(placed) == [i for i in range(500) if lengths[i] >= 2]
    for b in batches:
        assert len(b.rows) <= 4
        for row in b.rows:
            assert sum(lengths[d] for d in row) <= b.width
            if b.width != 300:  # a document longer than the block: a batch of its own, its own width
                assert len(b.rows) == 1 and row == (b.rows[0][0],) and lengths[row[0]] == b.width > 300
    # the plan is a pure function of the lengths: same input, same plan; input order only breaks ties
    assert plan_packed(lengths, 300, 4) == batches
    used = sum(int(lengths[d]) for b in batches if b.width == 300 for row in b.rows for d in row)
    assert used / (300 * sum(len(b.rows) for b in batches if b.width == 300)) > 0.95  # little tail waste


def test_pack_rows_positions_and_predictions():
    docs = [np.array([5, 6, 7]), np.array([8, 9]), np.array([1, 2, 3, 4])]
    ids, pos, doc_of, predicts = pack_rows(docs, [(0, 1), (2,)], width=6)
    assert ids.tolist() == [[5, 6, 7, 8, 9, 9], [1, 2, 3, 4, 4, 4]]
    assert pos.tolist() == [[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 0, 1]]
    assert doc_of.tolist() == [[0, 0, 0, 1, 1, -1], [2, 2, 2, 2, -1, -1]]
    assert predicts.tolist() == [[True, True, False, True, False, False], [True, True, True, False, False, False]]
    with pytest.raises(ValueError, match="width"):
        pack_rows(docs, [(0, 2)], width=6)


def test_unknown_layout_is_refused():
    with pytest.raises(ValueError, match="layout"):
        compute_losses(tiny_model("llama"), random_docs([5]), layout="diagonal")


@pytest.mark.parametrize("layout", ["packed", "padded"])
def test_progress_counts_every_scored_document(layout):
    seen = []
    docs = random_docs(RAGGED, seed=9)
    compute_losses(tiny_model("llama"), docs, layout=layout, token_budget=700, on_documents=seen.append)
    assert sum(seen) == sum(1 for t in docs.tokens if len(t) >= 2) and len(seen) > 1
