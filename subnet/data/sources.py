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

from subnet.data.types import DocumentSource

PARQUET_PREFIX = "parquet:"
HUB_PARQUET = "fineweb-parquet"
DEFAULT_FINEWEB = "fineweb-rows"
ROWS_SETTINGS = ("endpoint", "page_size", "connections", "timeout_s", "retries", "backoff_s", "deadline_s",
                 "extra_pages")
HUB_SETTINGS = ("hub_endpoint", "token", "workers", "deadline_s", "extra_pages", "repo")


def make_source(competition, **config) -> DocumentSource:
    """The source the competition's `dataset` names, given the settings that apply to it (others ignored).

    `config` holds settings for every kind (endpoint, hub_endpoint, deadline_s, vocab_seed, ...), so
    callers can pass one set of settings for every competition.
    """
    dataset = competition.dataset
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
