"""Each model is scored in its own process: a model that misbehaves costs that model only."""

from __future__ import annotations

import numpy as np
import pytest

from subnet.eval.docfile import load_documents, save_documents
from subnet.eval.engine import compute_losses
from subnet.eval.worker import ScoreJob, score_models
from tests.eval_loaders import random_docs, tiny_model

LOADERS = "tests.eval_loaders"


def test_misbehaving_models_fail_alone_and_the_next_model_is_scored(tmp_path):
    model = tiny_model("llama")
    model.save_pretrained(tmp_path / "good")
    docs = random_docs([40, 30, 25, 1, 12], seed=7, truncated=[True, False, False, False, False])
    expected = compute_losses(model, docs)
    # One loader for all jobs (as in production); it picks a behaviour from the directory's name.
    bad = ["hangs", "rejected", "greedy", "crashes"]
    jobs = [ScoreJob(name, str(tmp_path / name), timeout_s=6 if name == "hangs" else None) for name in bad]
    jobs.append(ScoreJob("good", str(tmp_path / "good")))
    outcomes = score_models(
        jobs, "tiny", docs, timeout_s=60, loader=f"{LOADERS}:load_by_name",
        devices=["cpu", "cpu"], max_memory_bytes=16 * 1024**3,
    )
    assert list(outcomes) == [j.key for j in jobs]
    assert outcomes["hangs"].error == "timeout"
    assert 6 <= outcomes["hangs"].seconds < 20
    assert outcomes["rejected"].error == "rejected:too_many_params"
    assert "tiny" in outcomes["rejected"].detail
    # The cap's reason is recorded: the worker ran into our limit, not the machine's.
    assert outcomes["greedy"].error == "memory_limit" and "MemoryError" in outcomes["greedy"].detail
    assert "16.0 GiB memory cap" in outcomes["greedy"].detail
    assert outcomes["crashes"].error == "crashed" and "SIGABRT" in outcomes["crashes"].detail
    good = outcomes["good"]
    assert good.error == "" and good.losses is not None
    assert all(outcomes[k].losses is None for k in bad)
    np.testing.assert_allclose(good.losses.nll_sum, expected.nll_sum, rtol=1e-6)
    np.testing.assert_array_equal(good.losses.status, expected.status)
    np.testing.assert_array_equal(good.losses.n_tokens, expected.n_tokens)
    assert good.tokens_per_s > 0 and good.seconds > 0


def test_documents_survive_the_trip_through_a_file(tmp_path):
    docs = random_docs([5, 1, 0, 9], seed=8, truncated=[False, True, False, True])
    docs.tokenizer, docs.digest = "builtin:tiny", "abc"
    back = load_documents(save_documents(docs, tmp_path / "d.npz"))
    assert back.doc_ids == docs.doc_ids and back.tokenizer == "builtin:tiny" and back.digest == "abc"
    assert [t.tolist() for t in back.tokens] == [t.tolist() for t in docs.tokens]
    np.testing.assert_array_equal(back.n_bytes, docs.n_bytes)
    np.testing.assert_array_equal(back.truncated, docs.truncated)


def test_bad_requests_fail_before_any_worker_starts():
    docs = random_docs([5])
    with pytest.raises(ValueError, match="duplicate job keys"):
        score_models([ScoreJob("a", "x"), ScoreJob("a", "y")], "tiny", docs, loader=f"{LOADERS}:load_saved")
    with pytest.raises(ValueError, match="cannot import loader"):
        score_models([ScoreJob("a", "x")], "tiny", docs, loader=f"{LOADERS}:no_such_loader")
