"""ModelRef: the commitment string that names a model on chain.

`namespace:name:commit:secure_hash:competition_id`, at most 128 bytes of UTF-8. Parsing never
raises anything but `ModelRefError`, whose message says what was wrong, so a validator's loop can
record one miner's malformed commitment and move on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

MAX_COMMITMENT_BYTES = 128
_REPO_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
_HASH = re.compile(r"^[A-Za-z0-9+/]{43}=$")  # base64 of 32 bytes
_COMPETITION = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class ModelRefError(ValueError):
    """A commitment string is not a valid ModelRef."""


@dataclass(frozen=True)
class ModelRef:
    namespace: str
    name: str
    commit: str
    secure_hash: str
    competition_id: str

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"

    def encode(self) -> str:
        text = ":".join((self.namespace, self.name, self.commit, self.secure_hash, self.competition_id))
        # Round-trip through the parser so that we never publish what we would reject.
        ModelRef.parse(text)
        return text

    def short(self) -> str:
        return f"{self.repo_id}@{self.commit[:8]}"

    @classmethod
    def parse(cls, data: str | bytes, competitions: Iterable[str] | None = None) -> "ModelRef":
        if isinstance(data, (bytes, bytearray, memoryview)):
            raw = bytes(data)
            if len(raw) > MAX_COMMITMENT_BYTES:
                raise ModelRefError(f"commitment is {len(raw)} bytes, the limit is {MAX_COMMITMENT_BYTES}")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ModelRefError(f"commitment is not valid UTF-8 ({e.reason} at byte {e.start})") from None
        elif isinstance(data, str):
            text = data
            try:
                size = len(text.encode("utf-8"))
            except UnicodeEncodeError:
                raise ModelRefError("commitment contains characters that cannot be encoded as UTF-8") from None
            if size > MAX_COMMITMENT_BYTES:
                raise ModelRefError(f"commitment is {size} bytes, the limit is {MAX_COMMITMENT_BYTES}")
        else:
            raise ModelRefError(f"commitment must be text, got {type(data).__name__}")
        parts = text.split(":")
        if len(parts) != 5:
            raise ModelRefError(
                f"commitment has {len(parts)} field(s); expected 5 "
                "(namespace:name:commit:secure_hash:competition_id)"
            )
        namespace, name, commit, secure, competition = parts
        for field, value in zip(("namespace", "name", "commit", "secure_hash", "competition_id"), parts):
            if not value:
                raise ModelRefError(f"commitment field {field} is empty")
        if not _REPO_PART.fullmatch(namespace) or ".." in namespace:
            raise ModelRefError(f"namespace {namespace!r} is not a valid repo owner")
        if not _REPO_PART.fullmatch(name) or ".." in name:
            raise ModelRefError(f"name {name!r} is not a valid repo name")
        if not _COMMIT.fullmatch(commit):
            raise ModelRefError(f"commit {commit!r} is not a lowercase hex revision of 7-64 characters")
        if not _HASH.fullmatch(secure):
            raise ModelRefError(f"secure_hash {secure!r} is not base64 of a sha256 digest")
        if not _COMPETITION.fullmatch(competition):
            raise ModelRefError(f"competition id {competition!r} is malformed")
        if competitions is not None and competition not in set(competitions):
            raise ModelRefError(f"unknown competition {competition!r}")
        return cls(namespace, name, commit, secure, competition)
