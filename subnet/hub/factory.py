"""Choose a model store from configuration: `hf` (the Hugging Face Hub) or `local:DIR`."""

from __future__ import annotations

import os
from pathlib import Path

from subnet.hub.store import ModelStore


def make_store(spec: str, hf_endpoint: str | None = None) -> ModelStore:
    """The validator, the miner and devnet all pick their store here; HF_TOKEN authenticates uploads."""
    if spec.startswith("local:"):
        directory = spec[len("local:"):]
        if not directory:
            raise ValueError("a local store needs a directory: --store local:DIR")
        from subnet.hub.local import LocalStore

        return LocalStore(Path(directory).expanduser())
    if spec == "hf":
        from subnet.hub.huggingface import HuggingFaceStore

        return HuggingFaceStore(token=os.environ.get("HF_TOKEN") or None, endpoint=hf_endpoint)
    raise ValueError(f"--store must be 'hf' or 'local:DIR', got {spec!r}")
