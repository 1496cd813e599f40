"""ModelRef: the commitment string that names a model on chain.

`namespace:name:commit:secure_hash:competition_id`, at most 128 bytes of UTF-8. Parsing never
raises anything but `ModelRefError`, whose message says what was wrong, so a validator's loop can
record one miner's malformed commitment and move on. Namespace and name follow the Hub's own repo
id rules (`repo_id_problem`), so a ref the Hub would refuse is rejected here with the reason
instead of failing later as a store error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

MAX_COMMITMENT_BYTES = 128
MAX_REPO_PART = 96  # the Hub's limit for a namespace and for a repo name
_REPO_CHARS = re.compile(r"^[A-Za-z0-9._-]+$")
_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
_HASH = re.compile(r"^[A-Za-z0-9+/]{43}=$")  # base64 of 32 bytes
_COMPETITION = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class ModelRefError(ValueError):
    """A commitment string is not a valid ModelRef."""


def repo_part_problem(part: str, *, is_name: bool = True) -> str | None:
    """Why the Hub would refuse `part` as a repo name (or namespace), or None when it is valid.

    The rules of huggingface_hub's `validate_repo_id` (which mirrors the Hub's): ASCII letters,
    digits, '-', '_', '.'; 1-96 characters; no leading or trailing '-' or '.'; no '--' or '..';
    and a repo id (so the name) may not end with '.git'.
    """
    if not part:
        return "is empty"
    if len(part) > MAX_REPO_PART:
        return f"is {len(part)} characters, the Hub allows {MAX_REPO_PART}"
    if not _REPO_CHARS.fullmatch(part):
        return "may only hold ASCII letters, digits, '-', '_' and '.'"
    if part[0] in "-." or part[-1] in "-.":
        return "may not start or end with '-' or '.'"
    if "--" in part or ".." in part:
        return "may not contain '--' or '..'"
    if is_name and part.endswith(".git"):
        return "may not end with '.git'"
    return None


def repo_id_problem(repo_id: str) -> str | None:
    """Why the Hub would refuse `namespace/name`, or None when it is valid."""
    parts = repo_id.split("/")
    if len(parts) != 2:
        return f"repo id {repo_id!r} is not namespace/name"
    for label, part in zip(("namespace", "name"), parts):
        problem = repo_part_problem(part, is_name=label == "name")
        if problem:
            return f"{label} {part!r} {problem}"
    return None


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
        for label, part in (("namespace", namespace), ("name", name)):
            problem = repo_part_problem(part, is_name=label == "name")
            if problem:
                raise ModelRefError(f"{label} {part!r} is not a valid repo {label} on the Hub: it {problem}")
        if not _COMMIT.fullmatch(commit):
            raise ModelRefError(f"commit {commit!r} is not a lowercase hex revision of 7-64 characters")
        if not _HASH.fullmatch(secure):
            raise ModelRefError(f"secure_hash {secure!r} is not base64 of a sha256 digest")
        if not _COMPETITION.fullmatch(competition):
            raise ModelRefError(f"competition id {competition!r} is malformed")
        if competitions is not None and competition not in set(competitions):
            raise ModelRefError(f"unknown competition {competition!r}")
        return cls(namespace, name, commit, secure, competition)


def display_ref(ref: str | bytes | None) -> str:
    """A commitment as text, whatever was stored: bytes a chain returned, or a string that does not parse.
    The one display form of a commitment in tables, pages and reports."""
    if not ref:
        return ""
    if isinstance(ref, (bytes, bytearray, memoryview)):
        ref = bytes(ref).decode("utf-8", errors="backslashreplace")
    ref = str(ref)
    try:
        return ModelRef.parse(ref).short()
    except (ModelRefError, ValueError, TypeError):
        return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in ref[:40])  # no control characters
