"""A round's data in the validator: refused when it is not what the seed chose, recorded with its identity
(state and /rounds), and cut to exactly the positions the competition promises a model."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import aiohttp
import asyncio
import numpy as np
import pytest

from subnet.competitions import LLAMA_FAMILY, SamplingBudget, get_competition
from subnet.data.fineweb import FineWebSource
from subnet.data.synthetic import SyntheticSource
from subnet.data.tokenizer import load_tokenizer
from subnet.eval.types import STATUS_FAILED
from subnet.validator.api import StatusServer, build_app
from subnet.validator.documents import RoundDataError, inprocess_scorer, prepare_documents
from subnet.validator.context import ScoreJobSpec
from subnet.validator.metrics import ValidatorMetrics
from subnet.validator.state import ValidatorState
from tests.fakes.datasets_server import running_server

SEED = "0x" + "7e" * 32
CONFIGS = {"CC-MAIN-2019-35": 4_000, "CC-MAIN-2024-10": 8_000}
COMPETITION = dataclasses.replace(get_competition("tiny"), dataset="fineweb-rows",
                                  sampling=SamplingBudget(pages=3, page_size=20, max_documents=60, min_documents=50))


def deps_for(tmp_path, source):
    state = ValidatorState(tmp_path / "state.sqlite")
    return SimpleNamespace(state=state, source_for=lambda competition: source, tokenizers={})


def fineweb(url: str, **kw) -> FineWebSource:
    return FineWebSource(endpoint=url, **{"page_size": 20, "timeout_s": 0.5, "retries": 1, "backoff_s": 0.01, **kw})


def test_a_complete_round_is_recorded_with_its_identity_and_shown_in_rounds(tmp_path):
    with running_server(configs=dict(CONFIGS)) as server:
        deps = deps_for(tmp_path, fineweb(server.url))
        round_id = deps.state.start_round(1000, SEED)
        data, docs = prepare_documents(deps, SEED, COMPETITION, round_id)
    assert len(docs) == 60 and data.complete
    [row] = deps.state.round_data(round_id)
    assert row["comparable"] and row["error"] is None and row["digest"] == data.digest
    identity = row["identity"]
    assert identity["revision"] == server.revision and identity["configs"] == [list(c) for c in sorted(CONFIGS.items())]
    assert identity["page_ids"] == list(data.page_ids) and len(identity["identity_digest"]) == 64

    app_server = StatusServer(build_app(deps.state, ValidatorMetrics()), "127.0.0.1", 0)
    port = app_server.start()

    async def get_rounds():
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/rounds") as r:
                return await r.json()

    try:
        body = asyncio.run(get_rounds())
    finally:
        app_server.stop()
    shown = body["rounds"][0]["data"][0]
    assert shown["identity"]["revision"] == server.revision and shown["comparable"] is True


def test_a_round_missing_a_page_is_not_judged_and_says_why(tmp_path):
    from subnet.data.fineweb import choose_page

    with running_server(configs=dict(CONFIGS)) as server:
        dead = choose_page(SEED, 2, dict(CONFIGS), 20)
        server.page_faults[(dead.config, dead.offset)] = ["500"] * 50
        deps = deps_for(tmp_path, fineweb(server.url))
        round_id = deps.state.start_round(1000, SEED)
        with pytest.raises(RoundDataError, match="got 2 of the 3 pages"):
            prepare_documents(deps, SEED, COMPETITION, round_id)
    [row] = deps.state.round_data(round_id)
    assert not row["comparable"] and row["error"].startswith("got 2 of the 3 pages")
    assert row["failed_pages"][0].startswith(dead.id) and dead.id not in row["page_ids"]


def test_a_round_with_replaced_pages_is_judged_but_flagged(tmp_path):
    from subnet.data.fineweb import choose_page

    with running_server(configs=dict(CONFIGS)) as server:
        dead = choose_page(SEED, 0, dict(CONFIGS), 20)
        server.page_faults[(dead.config, dead.offset)] = ["500"] * 50
        deps = deps_for(tmp_path, fineweb(server.url, extra_pages=1))
        round_id = deps.state.start_round(1000, SEED)
        data, docs = prepare_documents(deps, SEED, COMPETITION, round_id)
    [row] = deps.state.round_data(round_id)
    assert len(docs) == 60 and not row["comparable"] and row["identity"]["replaced_pages"] == list(data.replaced_pages)


def test_a_round_with_too_few_documents_is_not_judged(tmp_path):
    with running_server(configs=dict(CONFIGS)) as server:
        server.blank_rows.update((c, i) for c in CONFIGS for i in range(0, max(CONFIGS.values()), 2))
        deps = deps_for(tmp_path, fineweb(server.url))
        round_id = deps.state.start_round(1000, SEED)
        with pytest.raises(RoundDataError, match=r"30 documents, the competition needs at least 50 \(30 blank\)"):
            prepare_documents(deps, SEED, COMPETITION, round_id)
    [row] = deps.state.round_data(round_id)
    assert row["n_docs"] == 30 and row["identity"]["dropped"] == {"blank": 30}


def test_min_documents_defaults_to_half_and_is_validated():
    from subnet.competitions import CompetitionError

    assert SamplingBudget(max_documents=100).required_documents == 50
    assert SamplingBudget(max_documents=100, min_documents=7).required_documents == 7
    with pytest.raises(CompetitionError, match="sampling.min_documents"):
        dataclasses.replace(COMPETITION, sampling=SamplingBudget(max_documents=10, min_documents=11))
    with pytest.raises(CompetitionError, match="sampling.min_documents"):
        dataclasses.replace(COMPETITION, sampling=SamplingBudget(max_documents=10, min_documents="3"))


def test_a_gpt2_with_n_positions_equal_to_the_competition_length_scores_in_a_round(tmp_path):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from subnet.hub.loading import check_model_dir

    competition = dataclasses.replace(get_competition("tiny"), max_seq_len=32, architectures=LLAMA_FAMILY + ("GPT2LMHeadModel",),
                                      dataset="synthetic", sampling=SamplingBudget(pages=1, page_size=8, max_documents=8))
    tok = load_tokenizer(competition.tokenizer)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=-(-len(tok) // 64) * 64, n_positions=competition.max_seq_len, n_embd=32, n_layer=1,
                        n_head=2, eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2", safe_serialization=True)
    assert check_model_dir(tmp_path / "gpt2", competition).max_position_embeddings == competition.max_seq_len

    deps = deps_for(tmp_path, SyntheticSource())
    data, docs = prepare_documents(deps, SEED, competition)
    assert docs.truncated.any() and max(len(t) for t in docs.tokens) == competition.max_seq_len
    outcome = inprocess_scorer("cpu")([ScoreJobSpec("gpt2", str(tmp_path / "gpt2"))], competition, docs)["gpt2"]
    assert outcome.error == "", outcome.detail
    assert np.isfinite(outcome.losses.per_token()).all() and not (outcome.losses.status == STATUS_FAILED).any()
    assert (outcome.losses.n_tokens == docs.n_predicted).all()
