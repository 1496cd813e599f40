"""The synthetic corpus and the builtin tokenizer: determinism, variety, and what the round needs."""

from __future__ import annotations

import numpy as np
import pytest

from subnet.competitions import get_competition
from subnet.data.sampling import build_round, tokenize_documents
from subnet.data.synthetic import SyntheticSource, synthetic_documents
from subnet.data.tokenizer import EOS_TOKEN, TokenizerError, load_tokenizer
from subnet.data.types import DocumentSource


def test_same_seed_same_documents_and_different_seed_different_documents():
    a, b, c = synthetic_documents(7, 20), synthetic_documents(7, 20), synthetic_documents(8, 20)
    assert a == b
    assert not {d.text for d in a} & {d.text for d in c}
    assert len({d.text for d in a}) == 20
    assert synthetic_documents("7", 5) == synthetic_documents(7, 5)  # ids and texts key on str(seed)


def test_documents_do_not_touch_the_global_rng():
    import random

    random.seed(123)
    expected = random.random()
    random.seed(123)
    synthetic_documents(1, 5)
    assert random.random() == expected


def test_lengths_vary_from_tens_to_about_two_thousand_tokens():
    tok = load_tokenizer("builtin:tiny")
    docs = tokenize_documents(synthetic_documents("lengths", 300), tok, max_seq_len=100_000)
    n = np.array([len(t) for t in docs.tokens])
    assert n.min() < 60 and n.max() > 1000 and n.max() < 3000
    assert 100 < np.median(n) < 600


def test_source_is_deterministic_per_seed_and_pages_are_prefix_stable():
    source = SyntheticSource()
    assert isinstance(source, DocumentSource)
    r1 = source.fetch_round("0xaa", pages=3, page_size=10, max_documents=30)
    r2 = SyntheticSource().fetch_round("0xaa", pages=3, page_size=10, max_documents=30)
    r3 = source.fetch_round("0xbb", pages=3, page_size=10, max_documents=30)
    assert r1 == r2 and len(r1.documents) == 30 and r1.digest
    assert all(p.startswith("synthetic/") for p in r1.page_ids)
    assert set(r1.page_ids).isdisjoint(r3.page_ids) and r1.digest != r3.digest
    assert r1.documents[0].id == f"{r1.page_ids[0]}/0"
    bigger = source.fetch_round("0xaa", pages=4, page_size=20, max_documents=5)
    assert bigger.page_ids[:3] == r1.page_ids
    assert bigger.documents == r1.documents[:5]
    assert SyntheticSource(vocab_seed=1).fetch_round("0xaa", 1, 5, 5).documents != r1.documents[:5]


def test_build_round_uses_the_competition_budget():
    comp = get_competition("tiny")
    data = build_round(SyntheticSource(), "0x" + "ab" * 32, comp)
    assert len(data.page_ids) == comp.sampling.pages
    assert len(data.documents) == min(comp.sampling.max_documents, comp.sampling.pages * comp.sampling.page_size)
    assert data.failed_pages == ()


def test_builtin_tokenizer_round_trips_any_text_and_has_eos_and_pad():
    tok = load_tokenizer("builtin:tiny")
    assert tok is load_tokenizer("builtin:tiny")  # cached
    assert tok.eos_token == EOS_TOKEN and tok.eos_token_id == 0
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    assert 1000 < len(tok) <= 4096
    text = "Alice is a baker in Paris. 17 plus 4 is 21.\n\nÜnïcödé ✓ 😀 <tag>"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    # The synthetic corpus compresses well (it was trained on it): about 4 bytes a token.
    ids = tok(synthetic_documents(3, 1)[0].text)["input_ids"]
    assert len(synthetic_documents(3, 1)[0].text) / len(ids) > 3


def test_unknown_tokenizer_refs_fail_clearly(tmp_path):
    with pytest.raises(TokenizerError, match="unknown builtin tokenizer"):
        load_tokenizer("builtin:nope")
    with pytest.raises(TokenizerError, match="cannot load tokenizer"):
        load_tokenizer(str(tmp_path))  # a local directory with no tokenizer in it: no network involved
