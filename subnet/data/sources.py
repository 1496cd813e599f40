"""Choose a competition's document source from its `dataset` field: configuration, not branches.

    "fineweb"                   FineWeb from the default real source (DEFAULT_FINEWEB, chosen by
                                scripts/bench_data.py's numbers; see the README)
    "fineweb-rows"              FineWeb through the datasets-server API (`endpoint`)
    "fineweb-parquet[@REV]"     FineWeb's parquet files on the Hub at REV (`hub_endpoint`); pin REV to a
                                commit sha so validators choose from the same files whatever the Hub gains
    "parquet:DIR"               parquet files in a local directory
    "synthetic"                 the generated corpus (devnet, tests)
"""

from __future__ import annotations

from dataclasses import replace

from subnet.data.types import DocumentSource, RoundData

PARQUET_PREFIX = "parquet:"
HUB_PARQUET = "fineweb-parquet"
DEFAULT_FINEWEB = "fineweb-rows"
ROWS_SETTINGS = ("endpoint", "page_size", "connections", "timeout_s", "retries", "backoff_s", "deadline_s",
                 "extra_pages")
HUB_SETTINGS = ("hub_endpoint", "token", "workers", "deadline_s", "extra_pages", "repo")
SOURCE_TAG = "src"  # multi-source document ids read "src<k>|<the source's own id>"


def make_source(competition, **config) -> DocumentSource:
    """The source the competition's `dataset` names, given the settings that apply to it (others ignored).

    `config` holds settings for every kind (endpoint, hub_endpoint, deadline_s, vocab_seed, ...), so
    callers can pass one set of settings for every competition. A competition that lists weighted
    `sources` gets a `WeightedSources` over one such source per dataset.
    """
    if competition.sources:
        parts = [(_single_source(competition, src.dataset, dict(config)), src.weight)
                 for src in competition.weighted_sources]
        return WeightedSources(parts)
    return _single_source(competition, competition.dataset, config)


def _single_source(competition, dataset: str, config: dict) -> DocumentSource:
    if dataset == "fineweb":
        dataset = DEFAULT_FINEWEB
    if dataset == "synthetic":
        from subnet.data.synthetic import SyntheticSource

        return SyntheticSource(vocab_seed=int(config.get("vocab_seed", 0)))
    if dataset == "fineweb-rows":
        from subnet.data.fineweb import FineWebSource

        return FineWebSource(**{k: v for k, v in config.items() if k in ROWS_SETTINGS and v is not None})
    if dataset == HUB_PARQUET or dataset.startswith(HUB_PARQUET + "@"):
        from subnet.data.hub_parquet import HubParquetSource

        settings = {k: v for k, v in config.items() if k in HUB_SETTINGS and v is not None}
        if "hub_endpoint" in settings:
            settings["endpoint"] = settings.pop("hub_endpoint")
        revision = dataset.partition("@")[2] or "main"
        return HubParquetSource(revision=revision, **settings)
    if dataset.startswith(PARQUET_PREFIX) and len(dataset) > len(PARQUET_PREFIX):
        from subnet.data.parquet import ParquetSource

        return ParquetSource(dataset[len(PARQUET_PREFIX):])
    raise ValueError(f"competition {competition.id!r}: unknown dataset {dataset!r}; expected 'synthetic', "
                     f"'fineweb', 'fineweb-rows', 'fineweb-parquet[@REV]' or 'parquet:DIR'")


class WeightedSources:
    """Several sources in one round, each with its share of the pages and documents (at least one).

    Document ids are tagged with the source's index, so the scoring knows which source each
    document came from (`source_index`) and can weigh the sources' losses as the competition says.
    """

    def __init__(self, parts: list[tuple[DocumentSource, float]]) -> None:
        self.parts = parts

    def fetch_round(self, seed: str, pages: int, page_size: int, max_documents: int) -> RoundData:
        page_ids, documents, failed, parts = [], [], [], []
        for k, (source, weight) in enumerate(self.parts):
            data = source.fetch_round(f"{seed}:{k}", max(1, round(pages * weight)), page_size,
                                      max(1, round(max_documents * weight)))
            page_ids += [f"{SOURCE_TAG}{k}|{p}" for p in data.page_ids]
            failed += [f"{SOURCE_TAG}{k}|{p}" for p in data.failed_pages]
            documents += [replace(d, id=f"{SOURCE_TAG}{k}|{d.id}") for d in data.documents]
            parts.append(data)
        return RoundData(
            seed, tuple(page_ids), tuple(documents), tuple(failed),
            source=" + ".join(f"{w:g} x {d.source}" for (_, w), d in zip(self.parts, parts)),
            revisions=tuple(r for d in parts for r in d.revisions),
            replaced_pages=tuple(f"{SOURCE_TAG}{k}|{p}" for k, d in enumerate(parts) for p in d.replaced_pages),
            dropped=tuple(x for d in parts for x in d.dropped), notes=tuple(n for d in parts for n in d.notes),
        )


def source_index(doc_id: str) -> int:
    """The source a document came from: k for ids tagged by `WeightedSources`, else 0."""
    if doc_id.startswith(SOURCE_TAG) and "|" in doc_id:
        head = doc_id[len(SOURCE_TAG):doc_id.index("|")]
        if head.isdigit():
            return int(head)
    return 0
