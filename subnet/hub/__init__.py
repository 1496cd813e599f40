"""Models: the commitment codec, content hashing, stores (Hub, local) and safe loading."""

from subnet.hub.errors import ModelRejected
from subnet.hub.hashing import directory_hash, secure_hash
from subnet.hub.model_ref import ModelRef, ModelRefError
from subnet.hub.store import ModelStore, RepoFile, StoreError

__all__ = [
    "ModelRef",
    "ModelRefError",
    "ModelRejected",
    "ModelStore",
    "RepoFile",
    "StoreError",
    "directory_hash",
    "secure_hash",
]
