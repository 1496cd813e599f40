"""The commitment codec (subnet.hub.model_ref) and the model hashes (subnet.hub.hashing)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subnet.competitions import DEFAULT_COMPETITIONS
from subnet.hub.hashing import directory_hash, file_hash, model_files, secure_hash
from subnet.hub.model_ref import (
    MAX_COMMITMENT_BYTES,
    ModelRef,
    ModelRefError,
    repo_id_problem,
)

HASH = base64.b64encode(hashlib.sha256(b"model").digest()).decode()
COMMIT = "0123456789abcdef0123456789abcdef01234567"
COMPETITIONS = list(DEFAULT_COMPETITIONS)
GOOD = ModelRef("alice", "tiny-lm.v2", COMMIT, HASH, "b3")


def text_of(*fields: str) -> str:
    return ":".join(fields)


# --------------------------------------------------------------------------- round trip


def test_round_trip_through_text_and_bytes():
    text = GOOD.encode()
    assert text == f"alice:tiny-lm.v2:{COMMIT}:{HASH}:b3"
    assert ModelRef.parse(text) == GOOD
    assert ModelRef.parse(text.encode()) == GOOD
    assert ModelRef.parse(memoryview(text.encode()), competitions=COMPETITIONS) == GOOD
    assert GOOD.repo_id == "alice/tiny-lm.v2"
    assert GOOD.short() == "alice/tiny-lm.v2@01234567"


def test_exactly_128_bytes_parses_and_129_does_not():
    ref = ModelRef("a" * 8, "m" * 6, "f" * 64, HASH, "c" * 2)
    assert len(ref.encode().encode()) == MAX_COMMITMENT_BYTES
    assert ModelRef.parse(ref.encode()) == ref
    with pytest.raises(ModelRefError, match="129 bytes"):
        ModelRef("a" * 8, "m" * 7, "f" * 64, HASH, "c" * 2).encode()


def test_a_real_directory_hash_makes_a_valid_commitment(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    ref = ModelRef("alice", "m", COMMIT[:7], secure_hash(directory_hash(tmp_path), "5Hotkey"), "tiny")
    assert ModelRef.parse(ref.encode(), competitions=["tiny"]) == ref


# --------------------------------------------------------------------------- rejections


def rejected(data, match: str, **kw) -> None:
    with pytest.raises(ModelRefError, match=match):
        ModelRef.parse(data, **kw)


@pytest.mark.parametrize("fields", [4, 6, 1])
def test_wrong_field_count(fields):
    parts = ["alice", "m", COMMIT, HASH, "b3", "extra"]
    data = ":".join((parts * 2)[:fields])
    rejected(data, f"{fields} field")


FIELD_NAMES = ["namespace", "name", "commit", "secure_hash", "competition_id"]


@pytest.mark.parametrize("index,name", list(enumerate(FIELD_NAMES)))
def test_each_empty_field_is_named(index, name):
    parts = ["alice", "m", COMMIT, HASH, "b3"]
    parts[index] = ""
    rejected(":".join(parts), f"field {name} is empty")


def test_over_128_bytes_as_text_and_as_bytes():
    long = text_of("a" * 40, "b" * 40, COMMIT, HASH, "b3")
    assert len(long.encode()) > MAX_COMMITMENT_BYTES
    rejected(long, "limit is 128")
    rejected(long.encode(), "limit is 128")
    # Multi-byte characters count as bytes, not characters.
    rejected("é" * 65, "130 bytes")


def test_non_utf8_bytes_and_unencodable_text():
    rejected(b"alice:m:" + b"\xff\xfe" + b":x:b3", "not valid UTF-8")
    rejected("alice:m\udc80:abcdef0:x:b3", "cannot be encoded")
    rejected(12345, "must be text")
    rejected(None, "must be text")


@pytest.mark.parametrize("namespace,name", [
    ("-alice", "m"), ("alice-", "m"), ("al ice", "m"), ("a..b", "m"), ("alice", "m/x"),
    ("alice", ".hidden"), ("alice", "m-"), ("ålice", "m"), ("alice\n", "m"), ("alice", "m\n"),
])
def test_bad_repo_ids(namespace, name):
    rejected(text_of(namespace, name, COMMIT, HASH, "b3"), "not a valid repo")


@pytest.mark.parametrize("commit", ["ABCDEF0", "abc123", "g" * 40, "a" * 65, "abcdef0\n"])
def test_bad_commits(commit):
    rejected(text_of("alice", "m", commit, HASH, "b3"), "commit")


@pytest.mark.parametrize("secure", [HASH[:-1], HASH.rstrip("=") + "A", "!" * 43 + "=", HASH + "\n"])
def test_bad_hashes(secure):
    rejected(text_of("alice", "m", COMMIT, secure, "b3"), "secure_hash")


def test_competitions_unknown_or_malformed():
    rejected(text_of("alice", "m", COMMIT, HASH, "nope"), "unknown competition", competitions=COMPETITIONS)
    rejected(text_of("alice", "m", COMMIT, HASH, "b3\n"), "malformed")
    rejected(text_of("alice", "m", COMMIT, HASH, "b 3"), "malformed")
    assert ModelRef.parse(text_of("alice", "m", COMMIT, HASH, "nope")).competition_id == "nope"  # no list, no check


def test_encode_refuses_what_parse_would_reject():
    with pytest.raises(ModelRefError):
        ModelRef("alice", "m", "NOT-HEX", HASH, "b3").encode()


# --------------------------------------------------------------------------- fuzz

_FIELD = st.text(alphabet=st.sampled_from("abcAB09-._:/=+ \n\x00é"), max_size=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    st.lists(_FIELD, min_size=0, max_size=7).map(":".join),
    st.tuples(_FIELD, _FIELD, st.sampled_from([COMMIT, COMMIT[:7], "xyz"]), st.sampled_from([HASH, "x"]),
              st.sampled_from(["b3", "tiny", "zz"])).map(lambda t: ":".join(t)),
))
def test_parse_never_raises_anything_but_model_ref_error(data):
    try:
        ref = ModelRef.parse(data, competitions=COMPETITIONS)
    except ModelRefError:
        return
    # Whatever parses is canonical: it re-encodes to the same text, within the byte limit.
    text = data.decode() if isinstance(data, bytes) else data
    assert ref.encode() == text
    assert len(text.encode()) <= MAX_COMMITMENT_BYTES
    assert "\n" not in text


# --------------------------------------------------------------------------- hashing


def write_model(root, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def test_file_hash_is_base64_sha256(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert file_hash(tmp_path / "f") == base64.b64encode(hashlib.sha256(b"abc").digest()).decode()


def test_directory_hash_is_the_documented_formula(tmp_path):
    write_model(tmp_path, {"b.bin": b"2", "a.json": b"1", "sub/c.txt": b"3"})
    expected = "".join(base64.b64encode(hashlib.sha256(c).digest()).decode() for c in (b"1", b"2", b"3"))
    assert directory_hash(tmp_path) == base64.b64encode(hashlib.sha256(expected.encode()).digest()).decode()


def test_directory_hash_ignores_creation_order_and_hidden_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_model(a, {"x.json": b"1", "y.safetensors": b"2"})
    write_model(b, {"y.safetensors": b"2", "x.json": b"1", ".cache/junk": b"9", ".git/HEAD": b"ref"})
    assert [p.name for p in model_files(b)] == ["x.json", "y.safetensors"]
    assert directory_hash(a) == directory_hash(b)


def test_directory_hash_changes_with_content_and_with_names(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_model(a, {"x.json": b"1", "y.bin": b"2"})
    write_model(b, {"x.json": b"1", "y.bin": b"3"})
    write_model(c, {"x.json": b"2", "y.bin": b"1"})  # same contents, swapped between names
    assert len({directory_hash(a), directory_hash(b), directory_hash(c)}) == 3


def test_directory_hash_of_an_empty_directory_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no model files"):
        directory_hash(tmp_path)


def test_secure_hash_binds_the_hotkey():
    d = directory_hash.__name__  # any string stands in for a directory hash
    one, two = secure_hash(d, "5HotkeyA"), secure_hash(d, "5HotkeyB")
    assert one != two and secure_hash(d, "5HotkeyA") == one
    assert one == base64.b64encode(hashlib.sha256((d + "5HotkeyA").encode()).digest()).decode()


# --------------------------------------------------------------------------- the Hub's repo id rules


@pytest.mark.parametrize("namespace,name,why", [
    ("alice", "b--c", "'--'"), ("al--ice", "m", "'--'"), ("alice", "m..v2", "'..'"),
    ("alice", "m.git", ".git"), ("alice", "-m", "start or end"), ("alice", "m.", "start or end"),
    (".alice", "m", "start or end"), ("alice", "m odel", "ASCII letters"), ("alice", "modèle", "ASCII letters"),
])
def test_repo_ids_the_hub_refuses_are_rejected_with_the_reason(namespace, name, why):
    with pytest.raises(ModelRefError, match="not a valid repo") as e:
        ModelRef.parse(text_of(namespace, name, COMMIT, HASH, "b3"))
    assert why in str(e.value)


def test_repo_id_rules_accept_what_the_hub_accepts():
    for namespace, name in (("alice", "m.git2"), ("a_", "_m"), ("A-1.b", "x_y-z.v2"), ("a", "m" * 96)):
        assert repo_id_problem(f"{namespace}/{name}") is None
    assert "96" in repo_id_problem("alice/" + "m" * 97)
    assert repo_id_problem("alice") is not None and repo_id_problem("a/b/c") is not None


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab9_-./"), min_size=1, max_size=12))
def test_repo_id_rules_agree_with_the_hub_client(repo_id):
    """Same verdict as huggingface_hub's validate_repo_id (which mirrors the Hub) on namespace/name ids."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if repo_id.count("/") != 1:
        return
    try:
        validate_repo_id(repo_id)
        client_ok = True
    except HFValidationError:
        client_ok = False
    assert (repo_id_problem(repo_id) is None) == client_ok, repo_id
