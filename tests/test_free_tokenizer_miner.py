"""The miner's side of free tokenizers: train with the model's own tokenizer, benchmark in bits per byte."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from subnet.competitions import DEFAULT_COMPETITIONS
from subnet.miner.config import TrainConfig
from tests.hostile_tokenizers import FREE_COMPETITION, free_model, small_tokenizer_json, tiny_tokenizer_json
from tests.miner_run import quiet

FREE = replace(DEFAULT_COMPETITIONS["tiny"], free_tokenizer=True, max_seq_len=FREE_COMPETITION.max_seq_len)


@pytest.fixture
def own_tokenizer(tmp_path):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(small_tokenizer_json()),
                                  eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.save_pretrained(tmp_path / "tokenizer")
    return tmp_path / "tokenizer"


def test_a_miner_trains_with_its_own_tokenizer_and_benchmarks_in_bits_per_byte(own_tokenizer, tmp_path,
                                                                                monkeypatch):
    from tokenizers import Tokenizer

    from subnet.hub.loading import check_model_dir
    from subnet.miner.benchmark import benchmark, reference_set
    from subnet.miner.train import train

    monkeypatch.setitem(DEFAULT_COMPETITIONS, "tiny", FREE)  # the reference config of tiny, free
    result = train(TrainConfig(competition="tiny", tokenizer=str(own_tokenizer), out_dir=str(tmp_path / "run"),
                               steps=6, seq_len=32, micro_batch_size=4, warmup_steps=2, device="cpu",
                               progress="lines", reference_documents=16), echo=quiet)
    info = check_model_dir(result.model_dir, FREE)  # the validator's checks, its own tokenizer.json included
    assert info.vocab_size == 320 and (result.model_dir / "tokenizer.json").is_file()

    incumbent = free_model(tmp_path / "incumbent", tiny_tokenizer_json(), uniform=True)
    report = benchmark(result.model_dir, incumbent, FREE, n_documents=16, device="cpu")
    docs = reference_set(FREE, 16)
    tok = Tokenizer.from_str(tiny_tokenizer_json())
    rows = -(-tok.get_vocab_size() // 64) * 64  # free_model's embedding rows; uniform over them
    predicted = sum(len(tok.encode(t, add_special_tokens=False).ids) + 1 for t in docs.texts)
    assert report.incumbent.mean == pytest.approx(predicted * math.log2(rows) / docs.n_bytes.sum(), rel=1e-5)
    assert math.isfinite(report.candidate.mean) and report.verdict.code


def test_the_own_tokenizer_is_refused_where_the_competition_fixes_one(own_tokenizer, tmp_path):
    from subnet.miner.train import train

    with pytest.raises(ValueError, match="free tokenizers"):
        train(TrainConfig(competition="tiny", tokenizer=str(own_tokenizer), out_dir=str(tmp_path / "run"),
                          steps=2, device="cpu"), echo=quiet)
