"""Competitions over several weighted datasets: configuration, tagged documents, the combined statistic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from subnet.competitions import (
    DEFAULT_COMPETITIONS,
    AdvantageSchedule,
    CompetitionError,
    WeightedSource,
    competition_from_dict,
)
from subnet.data.sources import WeightedSources, make_source, source_index
from subnet.data.types import Document, RoundData

TINY = DEFAULT_COMPETITIONS["tiny"]


def test_fineweb_alone_stays_the_default():
    b3 = DEFAULT_COMPETITIONS["b3"]
    assert b3.sources == () and b3.weighted_sources == (WeightedSource("fineweb", 1.0),)
    assert b3.advantage.mode == "earned"  # the default since scripts/simulate_advantage.py


def test_weighted_sources_load_from_plain_data_and_normalise():
    data = {**TINY.to_dict(), "id": "mix", "sources": [{"dataset": "synthetic", "weight": 3},
                                                       {"dataset": "parquet:/data/code", "weight": 1}]}
    c = competition_from_dict(data)
    assert [(s.dataset, s.weight) for s in c.weighted_sources] == [("synthetic", 0.75), ("parquet:/data/code", 0.25)]
    assert competition_from_dict(c.to_dict()) == c  # round-trips


@pytest.mark.parametrize("sources, match", [
    ([{"dataset": "synthetic", "weight": 0}], "positive weights"),
    ([{"dataset": "synthetic", "weight": 1}, {"dataset": "synthetic", "weight": 2}], "twice"),
    ([{"dataset": "", "weight": 1}], "positive weights"),
    ("synthetic", "list of tables"),
])
def test_bad_sources_are_refused_by_name(sources, match):
    with pytest.raises(CompetitionError, match=match):
        competition_from_dict({**TINY.to_dict(), "sources": sources})


def test_advantage_mode_and_bounds_are_validated():
    with pytest.raises(CompetitionError, match="advantage.mode"):
        dataclasses.replace(TINY, advantage=AdvantageSchedule(mode="steepest"))
    with pytest.raises(CompetitionError, match="advantage.cap"):
        dataclasses.replace(TINY, advantage=AdvantageSchedule(mode="earned", cap=0.001, min_earned=0.002))
    with pytest.raises(CompetitionError, match="design_rounds"):
        dataclasses.replace(TINY, design_rounds=0.0)


class Recorder:
    """A source that records what it was asked for and returns numbered documents."""

    def __init__(self, name: str) -> None:
        self.name, self.calls = name, []

    def fetch_round(self, seed, pages, page_size, max_documents):
        self.calls.append((seed, pages, max_documents))
        docs = tuple(Document(f"{self.name}-p/{i}", f"{self.name} text {i}") for i in range(max_documents))
        return RoundData(seed, (f"{self.name}-p",), docs, ("bad-page",))


def test_weighted_sources_split_the_budget_and_tag_documents_with_their_source():
    web, code = Recorder("web"), Recorder("code")
    data = WeightedSources([(web, 0.75), (code, 0.25)]).fetch_round("s", 8, 100, 400)
    assert web.calls == [("s:0", 6, 300)] and code.calls == [("s:1", 2, 100)]
    assert [source_index(d.id) for d in data.documents] == [0] * 300 + [1] * 100
    assert data.failed_pages == ("src0|bad-page", "src1|bad-page")
    assert source_index("CC-MAIN-2024-10/17/3") == 0  # untagged ids (one source) are source 0


def test_make_source_builds_one_source_per_listed_dataset():
    mixed = dataclasses.replace(TINY, sources=(WeightedSource("synthetic", 2.0), WeightedSource("synthetic:x", 1.0)))
    with pytest.raises(ValueError, match="unknown dataset 'synthetic:x'"):
        make_source(mixed)
    ok = dataclasses.replace(TINY, sources=(WeightedSource("synthetic", 1.0),))
    assert isinstance(make_source(ok), WeightedSources)
    assert not isinstance(make_source(TINY), WeightedSources)


def test_judge_weighs_each_sources_loss_as_the_competition_says():
    """A model better only on the light source gains only that source's share of the loss."""
    from subnet.scoring.wins import Candidate, compute_wins

    rng = np.random.default_rng(0)
    tokens = rng.integers(50, 500, 800).astype(float)
    groups = np.repeat([0, 1], 400)
    base = 2.0 * tokens * rng.lognormal(0, 0.1, 800)
    later = base.copy()
    later[400:] *= 0.98  # 2% better on source 1 only
    result = compute_wins([Candidate("e", 1, base), Candidate("l", 2, later)], 3,
                          AdvantageSchedule(eps0=0.0), tokens=tokens, groups=groups, group_weights=[0.9, 0.1])
    c = result.comparisons[("e", "l")]
    assert c.diff_mean == pytest.approx(-0.002, rel=0.05)  # 10% weight x 2%


def test_the_round_reads_each_documents_source_from_its_tagged_id():
    from subnet.data.types import TokenizedDocuments
    from subnet.validator.documents import document_sources

    docs = TokenizedDocuments(["src0|p/1", "src1|q/2", "src1|q/3"], [np.arange(3)] * 3, np.ones(3), np.zeros(3, bool))
    mixed = dataclasses.replace(TINY, sources=(WeightedSource("synthetic", 1.0), WeightedSource("fineweb", 1.0)))
    assert document_sources(docs, mixed) == [0, 1, 1]
    assert document_sources(docs, TINY) is None  # one source: no grouping
