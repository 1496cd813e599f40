"""Free tokenizers (issue 28): each model's own tokenizer.json, checked within bounds, scored in bits per byte."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from subnet.competitions import CompetitionError, competition_from_dict
from subnet.data.synthetic import synthetic_documents
from subnet.data.texts import BYTES_PER_POSITION, cut_utf8, text_documents
from subnet.hub.errors import ModelRejected
from subnet.hub.tokenizer_file import regex_hazard
from tests.hostile_tokenizers import (
    CASES,
    FREE_COMPETITION,
    build_case,
    free_model,
    small_tokenizer_json,
    tiny_tokenizer_json,
)

STATIC = [c for c in CASES if not c.scored]
SCORED = [c for c in CASES if c.scored]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("free")
    return {
        "big": free_model(root / "big", tiny_tokenizer_json(), seed=1),
        "small": free_model(root / "small", small_tokenizer_json(), seed=2),
        "big_uniform": free_model(root / "big_uniform", tiny_tokenizer_json(), uniform=True),
        "small_uniform": free_model(root / "small_uniform", small_tokenizer_json(), uniform=True),
    }


@pytest.fixture(scope="module")
def docs():
    return text_documents(synthetic_documents("free-round", 12), FREE_COMPETITION.max_seq_len, "digest")


def test_the_field_is_off_by_default_and_must_be_a_bool():
    data = replace(FREE_COMPETITION, free_tokenizer=False).to_dict()
    assert competition_from_dict(data).free_tokenizer is False
    assert competition_from_dict({**data, "free_tokenizer": True}).free_tokenizer is True
    with pytest.raises(CompetitionError, match="free_tokenizer"):
        competition_from_dict({**data, "free_tokenizer": "yes"})


@pytest.mark.parametrize("pattern,safe", [
    (r"'s|'t| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", True),  # GPT-2's kind
    (r"(?i:'s|'t|'re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|\s*[\r\n]+", True),  # GPT-4's kind
    (r"(ab){3}", True), (r"\(a+\)+", True), (r"[(]+", True),
    (r"(a+)+$", False), (r"(a|aa)*b", False), (r"(a|b){2,}", False), (r"(a)\1", False),
    (r"(?<x>a)\k<x>", False), (r"(?(1)a|b)", False), (r"(a", False),
    (r"[ a]*[ b]*[ c]*[ d]*\d", False), (r"[ a]*[ b]*[ c]*|[ d]*\d", True), (r"a{2,}b{3,}c+d*", False),
    (r"\p{L}{1,3}\p{N}{1,3}x{2}y{1,2}", True),
])
def test_regexes_that_backtrack_without_bound_are_named(pattern, safe):
    assert (regex_hazard(pattern) is None) == safe


def test_there_are_enough_hostile_tokenizers():
    assert len(CASES) >= 15 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", STATIC, ids=[c.name for c in STATIC])
def test_each_hostile_tokenizer_is_refused_by_the_checks_with_its_reason(case, models, tmp_path):
    from subnet.hub.loading import check_model_dir

    with pytest.raises(ModelRejected) as err:
        check_model_dir(build_case(case, models["big"], tmp_path), FREE_COMPETITION)
    assert err.value.reason == case.reason, err.value
    assert err.value.detail


def test_honest_models_pass_and_only_a_free_competition_reads_their_tokenizer(models):
    from subnet.hub.loading import check_model_dir

    for name in ("big", "small"):
        assert check_model_dir(models[name], FREE_COMPETITION).vocab_size >= 320
    check_model_dir(models["big"], replace(FREE_COMPETITION, free_tokenizer=False))  # as before
    with pytest.raises(ModelRejected, match="smaller than the tokenizer"):  # the competition's tokenizer rules
        check_model_dir(models["small"], replace(FREE_COMPETITION, free_tokenizer=False))


def test_the_tokenizer_is_part_of_the_model_hash(models, tmp_path):
    import shutil

    from subnet.hub.hashing import directory_hash

    copy = shutil.copytree(models["small"], tmp_path / "copy")
    before = directory_hash(copy)
    (copy / "tokenizer.json").write_text((copy / "tokenizer.json").read_text().replace('"version"', '"version" ', 1))
    assert directory_hash(copy) != before


def test_texts_are_cut_on_characters_to_the_same_bytes_for_every_model():
    assert cut_utf8("aé€", 4) == "aé" and cut_utf8("aé€", 6) == "aé€" and cut_utf8("€", 2) == ""
    long = synthetic_documents("cut", 1)[0]
    docs = text_documents([long], 100)
    assert docs.n_bytes[0] == len(docs.texts[0].encode()) <= BYTES_PER_POSITION * 100 and docs.truncated[0]


def test_the_documents_file_carries_the_texts_exactly(tmp_path):
    from subnet.data.types import Document
    from subnet.eval.docfile import load_documents, save_documents

    texts = ["plain", "naïve café €5 — 日本語 🙂", "", "tab\tand\nnewline"]
    docs = text_documents([Document(f"d{i}", t) for i, t in enumerate(texts)], 96, "dig")
    back = load_documents(save_documents(docs, tmp_path / "docs.npz"))
    assert back.texts == texts and back.n_bytes.tolist() == [len(t.encode()) for t in texts]
    assert back.subset([1, 3]).texts == [texts[1], texts[3]]
    fixed = replace(docs, texts=None)
    assert load_documents(save_documents(fixed, tmp_path / "fixed.npz")).texts is None  # as before


def _uppercase_tokenizer():
    from tokenizers import Tokenizer

    data = json.loads(tiny_tokenizer_json())
    data["normalizer"] = {"type": "Lowercase"}
    return Tokenizer.from_str(json.dumps(data))


def test_a_few_texts_that_fail_the_round_trip_are_failed_documents_more_reject_the_model():
    from subnet.eval.free_tokens import tokenize_free

    tok = _uppercase_tokenizer()
    texts = ["fine text", "Upper", "also fine", "Two", "Three"]
    free = tokenize_free(tok, texts, [f"d{i}" for i in range(5)], 96, 0, 2048)
    assert free.failed.tolist() == [False, True, False, True, True]
    assert sorted(set(free.owner.tolist())) == [0, 2]
    with pytest.raises(ModelRejected) as err:
        tokenize_free(tok, texts + ["Four"], [f"d{i}" for i in range(6)], 96, 0, 2048)
    assert err.value.reason == "tokenizer_round_trip" and "4 of 6" in err.value.detail


def test_a_tokenizer_the_library_gives_up_on_is_rejected_not_crashed():
    """Oniguruma stops a regex that backtracks too long with a Rust panic (a BaseException in Python)."""
    from tokenizers import Tokenizer

    from subnet.eval.free_tokens import tokenize_free

    data = json.loads(tiny_tokenizer_json())
    split = {"type": "Split", "pattern": {"Regex": "(a+)+b"}, "behavior": "Isolated", "invert": False}
    data["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [split, data["pre_tokenizer"]]}
    with pytest.raises(ModelRejected) as err:  # past the static checks, as if they had missed it
        tokenize_free(Tokenizer.from_str(json.dumps(data)), ["a" * 40], ["d"], 96, 0, 2048)
    assert err.value.reason == "bad_tokenizer" and "PanicException" in err.value.detail


def test_ids_past_the_embeddings_reject_the_model_and_long_texts_are_windowed():
    from tokenizers import Tokenizer

    from subnet.eval.free_tokens import tokenize_free

    tok = Tokenizer.from_str(tiny_tokenizer_json())
    text = synthetic_documents("long", 1)[0].text[:2000]
    n_ids = len(tok.encode(text, add_special_tokens=False).ids)
    free = tokenize_free(tok, [text], ["d"], 16, 0, 2048)
    lengths = [len(w) for w in free.windows.tokens]
    assert max(lengths) <= 16 and len(lengths) > 1
    assert int(free.windows.n_predicted.sum()) == n_ids + 1  # every token and the closing EOS, once
    flat = [free.windows.tokens[0][0]] + [t for w in free.windows.tokens for t in w[1:]]
    assert flat == [0, *tok.encode(text, add_special_tokens=False).ids, 0]
    with pytest.raises(ModelRejected) as err:
        tokenize_free(tok, [text], ["d"], 16, 0, 100)
    assert err.value.reason == "tokenizer_ids"


def test_two_tokenizers_score_the_same_bytes_in_bits_per_byte(models, docs):
    """Uniform models: each predicted token costs ln(rows) nats, so bits per byte has a closed form."""
    from tokenizers import Tokenizer

    from subnet.eval.free_tokens import score_documents
    from subnet.hub.loading import load_model
    from subnet.scoring.loss import competition_loss, document_values

    results = {}
    for name, tokenizer_json in (("big_uniform", tiny_tokenizer_json()), ("small_uniform", small_tokenizer_json())):
        model = load_model(models[name], FREE_COMPETITION)
        losses = score_documents(model, models[name], docs, FREE_COMPETITION.max_seq_len)
        tok, rows = Tokenizer.from_str(tokenizer_json), model.get_input_embeddings().num_embeddings
        predicted = np.array([len(tok.encode(t, add_special_tokens=False).ids) + 1 for t in docs.texts])
        assert losses.n_tokens.tolist() == predicted.tolist()
        np.testing.assert_allclose(losses.nll_sum, predicted * math.log(rows), rtol=1e-5)
        bits, per = document_values(losses, per_byte=True)
        expected = predicted.sum() * math.log2(rows) / docs.n_bytes.sum()
        assert competition_loss(bits, per).mean == pytest.approx(expected, rel=1e-5)
        np.testing.assert_array_equal(losses.n_bytes, docs.n_bytes)
        results[name] = losses
    assert results["big_uniform"].n_tokens.sum() < results["small_uniform"].n_tokens.sum()


@pytest.mark.slow
def test_the_worker_scores_free_models_and_turns_hostile_tokenizers_into_reasons(models, docs, tmp_path):
    from subnet.eval.worker import ScoreJob, score_models

    hostile = {c.name: c for c in SCORED + [c for c in STATIC if c.name == "dropout"]}
    jobs = [ScoreJob("big", str(models["big"])), ScoreJob("small", str(models["small"]))]
    jobs += [ScoreJob(name, str(build_case(c, models["big"], tmp_path))) for name, c in hostile.items()]
    out = score_models(jobs, FREE_COMPETITION, docs, timeout_s=120)
    for name in ("big", "small"):
        assert out[name].error == "" and np.isfinite(out[name].losses.bits_per_byte()).all(), out[name]
        np.testing.assert_array_equal(out[name].losses.n_bytes, docs.n_bytes)
    for name, case in hostile.items():
        assert out[name].error == f"rejected:{case.reason}", (name, out[name])


def test_a_document_that_fails_the_round_trip_loses_its_pair_like_an_infinite_loss():
    from subnet.eval.types import STATUS_FAILED, STATUS_OK, DocLosses
    from subnet.scoring.loss import document_values
    from subnet.scoring.windows import fold_pair, window_stat

    n_bytes = np.full(20, 400)
    ok = np.full(20, STATUS_OK, dtype=np.int8)
    honest = DocLosses(np.full(20, 300.0), np.full(20, 100), n_bytes, ok)
    failed = ok.copy()
    failed[3] = STATUS_FAILED
    better_but_broken = DocLosses(np.full(20, 150.0), np.full(20, 90), n_bytes, failed)  # half the bits, one failure
    (a, per), (b, _) = document_values(honest, True), document_values(better_but_broken, True)
    assert np.isnan(b[3]) and per.tolist() == n_bytes.tolist()
    stat = window_stat(1, a, b, per)
    verdict = fold_pair([stat], lambda w: 0.0)
    assert (stat.earlier_failed, stat.later_failed) == (0, 1)
    assert not verdict.later_wins and verdict.decided_by_failures
