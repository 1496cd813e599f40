"""Documents for a round: seeded page choice, sources (FineWeb, parquet, synthetic), tokenization."""

from subnet.data.types import Document, DocumentSource, RoundData, TokenizedDocuments

__all__ = ["Document", "DocumentSource", "RoundData", "TokenizedDocuments"]
