"""Choose a competition's document source from its `dataset` field: configuration, not branches."""

from __future__ import annotations

from subnet.data.types import DocumentSource

PARQUET_PREFIX = "parquet:"


def make_source(competition, **config) -> DocumentSource:
    """"synthetic" -> SyntheticSource, "fineweb" -> FineWebSource(**config), "parquet:DIR" -> ParquetSource(DIR).

    `config` only applies to FineWeb (endpoint, connections, retries, ...); it is ignored by the
    local sources so callers can pass one set of settings for every competition.
    """
    dataset = competition.dataset
    if dataset == "synthetic":
        from subnet.data.synthetic import SyntheticSource

        return SyntheticSource(vocab_seed=int(config.get("vocab_seed", 0)))
    if dataset == "fineweb":
        from subnet.data.fineweb import FineWebSource

        config.pop("vocab_seed", None)
        return FineWebSource(**config)
    if dataset.startswith(PARQUET_PREFIX) and len(dataset) > len(PARQUET_PREFIX):
        from subnet.data.parquet import ParquetSource

        return ParquetSource(dataset[len(PARQUET_PREFIX):])
    raise ValueError(f"competition {competition.id!r}: unknown dataset {dataset!r}; "
                     f"expected 'synthetic', 'fineweb' or 'parquet:DIR'")
