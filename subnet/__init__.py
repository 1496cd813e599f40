"""A validator and miner for a Bittensor pretraining subnet."""

__version__ = "0.1.0"

# Sent with every set_weights call so that the chain can reject weights from outdated validators.
# Encodes major*10_000 + minor*100 + patch.
VERSION_KEY = 100
