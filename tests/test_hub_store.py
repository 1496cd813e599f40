"""LocalStore, the shared file rules and fetch_verified: real files, real hashing, no mocks."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from subnet.competitions import Competition
from subnet.hub.cache import MARKER, model_cache_dir, remove_unreferenced
from subnet.hub.download import check_listing, fetch_verified
from subnet.hub.errors import ModelRejected
from subnet.hub.hashing import directory_hash, secure_hash
from subnet.hub.local import LocalStore
from subnet.hub.model_ref import ModelRef
from subnet.hub.store import ModelStore, RepoFile, StoreError

HOTKEY = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
OTHER = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"


def small_competition(max_bytes: int = 10_000) -> Competition:
    return Competition(
        id="tiny", tokenizer="builtin:tiny", max_seq_len=64, min_params=1, max_params=10**9,
        max_bytes=max_bytes, architectures=("LlamaForCausalLM",),
    )


def write_model(directory: Path, weights: bytes = b"\x01" * 1000, extra: dict[str, bytes] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (directory / "model.safetensors").write_bytes(weights)
    for name, data in (extra or {}).items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    return directory


def published(store: LocalStore, src: Path, hotkey: str = HOTKEY, name: str = "m1") -> ModelRef:
    commit = store.upload(src, "alice", name)
    store.make_public("alice", name)
    return ModelRef("alice", name, commit, secure_hash(directory_hash(src), hotkey), "tiny")


# ----------------------------------------------------------------------------- rules


def test_listing_rules_name_the_problem():
    ok = [RepoFile("config.json", 10), RepoFile("model.safetensors", 100), RepoFile(".gitattributes", 5)]
    assert [f.path for f in check_listing(ok, 115)] == ["config.json", "model.safetensors"]
    with pytest.raises(ModelRejected) as e:
        check_listing(ok, 114)  # the hidden file counts toward the size too
    assert e.value.reason == "too_large"
    for bad in ("pytorch_model.bin", "modeling_evil.py", "sub/opt.pkl", "w.ckpt", "x.pth"):
        with pytest.raises(ModelRejected) as e:
            check_listing(ok + [RepoFile(bad, 1)], 10**6)
        assert e.value.reason == "forbidden_files" and bad in e.value.detail
    with pytest.raises(ModelRejected) as e:
        check_listing([RepoFile("config.json", 1), RepoFile("README.md", 1)], 100)
    assert e.value.reason == "no_safetensors"
    with pytest.raises(ModelRejected) as e:
        check_listing(ok + [RepoFile("../escape.safetensors", 1)], 10**6)
    assert e.value.reason == "forbidden_files"
    # Unknown but harmless files are listed, counted, and not downloaded.
    wanted = check_listing(ok + [RepoFile("image.png", 3)], 118)
    assert "image.png" not in [f.path for f in wanted]


# ----------------------------------------------------------------------------- LocalStore


def test_local_store_is_a_model_store_with_content_commits(tmp_path):
    store = LocalStore(tmp_path / "store")
    assert isinstance(store, ModelStore)
    src = write_model(tmp_path / "src")
    commit = store.upload(src, "alice", "m1")
    assert len(commit) == 40 and int(commit, 16) >= 0
    assert store.upload(src, "alice", "m1") == commit  # same content, same revision
    (src / "model.safetensors").write_bytes(b"\x02" * 1000)
    assert store.upload(src, "alice", "m1") != commit  # new content, new revision; old one stays
    assert (tmp_path / "store" / "alice" / "m1" / commit).is_dir()


def test_private_repo_cannot_be_read_until_made_public(tmp_path):
    store = LocalStore(tmp_path / "store")
    commit = store.upload(write_model(tmp_path / "src"), "alice", "m1")
    with pytest.raises(ModelRejected) as e:
        store.list_files("alice", "m1", commit)
    assert e.value.reason == "not_public"
    store.make_public("alice", "m1")
    files = store.list_files("alice", "m1", commit)
    assert {f.path: f.size for f in files} == {"config.json": 39, "model.safetensors": 1000}
    with pytest.raises(ModelRejected) as e:
        store.list_files("alice", "m1", "0" * 40)
    assert e.value.reason == "not_found"
    with pytest.raises(ModelRejected) as e:
        store.list_files("bob", "m1", commit)
    assert e.value.reason == "not_found"
    with pytest.raises(StoreError):
        store.make_public("bob", "nothing")


def test_upload_refuses_files_a_validator_would_not_take(tmp_path):
    store = LocalStore(tmp_path / "store")
    with pytest.raises(ModelRejected) as e:
        store.upload(write_model(tmp_path / "a", extra={"pytorch_model.bin": b"x"}), "alice", "m1")
    assert e.value.reason == "forbidden_files"
    with pytest.raises(ModelRejected) as e:
        store.upload(write_model(tmp_path / "b", extra={"photo.png": b"x"}), "alice", "m1")
    assert "photo.png" in e.value.detail
    with pytest.raises(ValueError):
        store.upload(write_model(tmp_path / "c"), "alice", "../etc")


def test_download_checks_size_before_copying(tmp_path):
    store = LocalStore(tmp_path / "store")
    ref = published(store, write_model(tmp_path / "src", weights=b"\x00" * 5000))
    dest = tmp_path / "dest"
    with pytest.raises(ModelRejected) as e:
        store.download("alice", "m1", ref.commit, dest, max_bytes=4000)
    assert e.value.reason == "too_large"
    assert not any(dest.rglob("*")) if dest.exists() else True
    store.download("alice", "m1", ref.commit, dest, max_bytes=6000)
    assert (dest / "model.safetensors").stat().st_size == 5000


def test_a_tampered_store_is_caught_after_download(tmp_path):
    """A pickle slipped into a revision after upload is refused by the listing rules."""
    store = LocalStore(tmp_path / "store")
    ref = published(store, write_model(tmp_path / "src"))
    (tmp_path / "store" / "alice" / "m1" / ref.commit / "evil.pkl").write_bytes(b"x")
    with pytest.raises(ModelRejected) as e:
        fetch_verified(store, ref, HOTKEY, small_competition(), tmp_path / "cache")
    assert e.value.reason == "forbidden_files"


# ----------------------------------------------------------------------------- fetch_verified


class CountingStore(LocalStore):
    downloads = 0

    def download(self, *a, **k):
        self.downloads += 1
        return super().download(*a, **k)


def test_fetch_verified_downloads_once_and_reuses(tmp_path):
    store = CountingStore(tmp_path / "store")
    src = write_model(tmp_path / "src")
    ref = published(store, src)
    path = fetch_verified(store, ref, HOTKEY, small_competition(), tmp_path / "cache")
    assert path == model_cache_dir(tmp_path / "cache", HOTKEY, ref.commit)
    assert directory_hash(path) == directory_hash(src)  # the marker is hidden, so the hash ignores it
    marker = json.loads((path / MARKER).read_text())
    assert marker["secure_hash"] == ref.secure_hash and marker["hotkey"] == HOTKEY
    assert fetch_verified(store, ref, HOTKEY, small_competition(), tmp_path / "cache") == path
    assert store.downloads == 1
    # A file changed on disk behind our back invalidates the marker: download again.
    (path / "model.safetensors").write_bytes(b"short")
    fetch_verified(store, ref, HOTKEY, small_competition(), tmp_path / "cache")
    assert store.downloads == 2
    assert (path / "model.safetensors").stat().st_size == 1000


def test_copied_commitment_fails_the_hotkey_bound_hash(tmp_path):
    store = LocalStore(tmp_path / "store")
    ref = published(store, write_model(tmp_path / "src"), hotkey=HOTKEY)
    with pytest.raises(ModelRejected) as e:
        fetch_verified(store, ref, OTHER, small_competition(), tmp_path / "cache")
    assert e.value.reason == "hash_mismatch"
    # Nothing half-verified is left behind for the copier's hotkey.
    assert not any((tmp_path / "cache" / OTHER).iterdir())


def test_fetch_verified_rejects_before_download(tmp_path):
    store = CountingStore(tmp_path / "store")
    ref = published(store, write_model(tmp_path / "src", weights=b"\x00" * 20_000))
    with pytest.raises(ModelRejected) as e:
        fetch_verified(store, ref, HOTKEY, small_competition(max_bytes=10_000), tmp_path / "cache")
    assert e.value.reason == "too_large" and store.downloads == 0
    wrong = ModelRef(ref.namespace, ref.name, ref.commit, ref.secure_hash, "b3")
    with pytest.raises(ModelRejected) as e:
        fetch_verified(store, wrong, HOTKEY, small_competition(max_bytes=10**6), tmp_path / "cache")
    assert e.value.reason == "competition_mismatch"


def test_remove_unreferenced(tmp_path):
    store = LocalStore(tmp_path / "store")
    cache = tmp_path / "cache"
    keep = fetch_verified(store, published(store, write_model(tmp_path / "a"), name="a"), HOTKEY,
                          small_competition(), cache)
    drop = fetch_verified(store, published(store, write_model(tmp_path / "b", b"\x05" * 10), OTHER, name="b"), OTHER,
                          small_competition(), cache)
    stale = cache / HOTKEY / ".partial-abc-1-x"
    stale.mkdir()
    old = time.time() - 7200
    os.utime(stale, (old, old))
    # Plenty of free space asked for nothing: the unreferenced model stays cached.
    assert remove_unreferenced(cache, {keep}, min_free_bytes=1) == [stale]
    assert drop.exists()
    removed = remove_unreferenced(cache, {keep})
    assert removed == [drop] and keep.exists() and not (cache / OTHER).exists()


# ----------------------------------------------------------------------------- hostile stores, damaged caches


def test_local_store_refuses_symlinks_and_non_utf8_names_like_the_hub(tmp_path):
    store = LocalStore(tmp_path / "store")
    ref = published(store, write_model(tmp_path / "src"))
    revision = tmp_path / "store" / "alice" / "m1" / ref.commit
    (revision / "model.safetensors").unlink()
    (revision / "model.safetensors").symlink_to("/etc/passwd")
    with pytest.raises(ModelRejected) as e:
        fetch_verified(store, ref, HOTKEY, small_competition(), tmp_path / "cache")
    assert e.value.reason == "forbidden_files" and "symbolic link" in e.value.detail
    assert not any((tmp_path / "cache").rglob("passwd"))
    (revision / "model.safetensors").unlink()
    (revision / "model.safetensors").write_bytes(b"\x01" * 1000)
    with open(os.path.join(os.fsencode(revision), b"\xff\xfe.json"), "wb") as f:
        f.write(b"{}")
    with pytest.raises(ModelRejected) as e:
        store.list_files("alice", "m1", ref.commit)
    assert e.value.reason == "bad_listing"


def test_an_os_error_reading_the_local_store_is_a_transient_store_error(tmp_path, monkeypatch):
    store = LocalStore(tmp_path / "store")
    ref = published(store, write_model(tmp_path / "src"))
    from pathlib import Path as _Path

    real = _Path.read_text

    def denied(self, *a, **kw):
        if self.name == "repo.json":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *a, **kw)

    monkeypatch.setattr(_Path, "read_text", denied)
    with pytest.raises(StoreError) as e:
        store.list_files("alice", "m1", ref.commit)
    assert e.value.transient and "Permission denied" in str(e.value)


def test_damage_that_keeps_size_and_mtime_is_found_by_the_periodic_rehash(tmp_path):
    from subnet.hub.cache import verify_cached

    store = CountingStore(tmp_path / "store")
    ref = published(store, write_model(tmp_path / "src"))
    path = fetch_verified(store, ref, HOTKEY, small_competition(), tmp_path / "cache")
    weights = path / "model.safetensors"
    st = weights.stat()
    weights.write_bytes(b"\x02" * 1000)  # same size
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime: the cheap check cannot see it
    assert verify_cached(path, ref, HOTKEY) is not None
    assert verify_cached(path, ref, HOTKEY, rehash_after_s=0) is None
    # A touched but intact file is hashed again once, then trusted by its new mtime.
    weights.write_bytes(b"\x01" * 1000)
    assert verify_cached(path, ref, HOTKEY) is not None
    marker = json.loads((path / MARKER).read_text())
    assert marker["files"]["model.safetensors"]["mtime_ns"] == weights.stat().st_mtime_ns


def test_free_disk_is_checked_before_each_download(tmp_path):
    from subnet.hub.download import DiskFull

    store = CountingStore(tmp_path / "store")
    ref = published(store, write_model(tmp_path / "src"))
    with pytest.raises(DiskFull) as e:
        fetch_verified(store, ref, HOTKEY, small_competition(), tmp_path / "cache", min_free_bytes=1 << 62)
    assert e.value.errno == 28 and store.downloads == 0
