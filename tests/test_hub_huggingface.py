"""HuggingFaceStore against a local fake Hub: the real huggingface_hub client code runs end to end."""

from __future__ import annotations

import pytest

from subnet.hub.download import fetch_verified
from subnet.hub.errors import ModelRejected
from subnet.hub.hashing import directory_hash, secure_hash
from subnet.hub.huggingface import HuggingFaceStore
from subnet.hub.model_ref import ModelRef
from subnet.hub.store import ModelStore, StoreError
from tests.fakes.hub_server import FakeHub
from tests.test_hub_store import HOTKEY, OTHER, small_competition, write_model

TOKEN = "hf_owner"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_PROGRESS_BARS", True)
    fake = FakeHub(owner_token=TOKEN).start()
    yield fake
    fake.stop()


def store_for(hub: FakeHub, token: str | None = None) -> HuggingFaceStore:
    return HuggingFaceStore(token=token, endpoint=hub.url, timeout_s=10, retries=2, backoff_s=0.05)


def test_upload_private_then_public_round_trip(hub, tmp_path):
    owner = store_for(hub, TOKEN)
    validator = store_for(hub)
    assert isinstance(owner, ModelStore)
    src = write_model(tmp_path / "src", extra={"tokenizer.json": b'{"v": 1}'})
    commit = owner.upload(src, "alice", "m1")
    assert hub.repos["alice/m1"].private
    assert set(hub.repos["alice/m1"].commits[commit]) == {".gitattributes", "config.json", "model.safetensors", "tokenizer.json"}
    with pytest.raises(ModelRejected) as e:
        validator.list_files("alice", "m1", commit)
    assert e.value.reason == "not_public"
    owner.make_public("alice", "m1")
    sizes = {f.path: f.size for f in validator.list_files("alice", "m1", commit)}
    assert sizes["model.safetensors"] == 1000 and ".gitattributes" in sizes

    ref = ModelRef("alice", "m1", commit, secure_hash(directory_hash(src), HOTKEY), "tiny")
    path = fetch_verified(validator, ref, HOTKEY, small_competition(), tmp_path / "cache")
    assert directory_hash(path) == directory_hash(src)
    assert not (path / ".gitattributes").exists() and not (path / ".cache").exists()
    gets = hub.count("GET", "/alice/m1/resolve/")
    assert fetch_verified(validator, ref, HOTKEY, small_competition(), tmp_path / "cache") == path
    assert hub.count("GET", "/alice/m1/resolve/") == gets  # reused, not downloaded again

    # A second upload with fewer files deletes the stale ones, so the new revision hashes as uploaded.
    (src / "tokenizer.json").unlink()
    commit2 = owner.upload(src, "alice", "m1")
    assert commit2 != commit and "tokenizer.json" not in hub.repos["alice/m1"].commits[commit2]


def test_missing_repo_and_revision_are_not_found(hub):
    sha = hub.add_repo("alice/m1", {"config.json": b"{}", "model.safetensors": b"x" * 10})
    validator = store_for(hub)
    for ns, name, commit in (("alice", "nope", sha), ("alice", "m1", "0123456789abcdef0123456789abcdef01234567")):
        with pytest.raises(ModelRejected) as e:
            validator.list_files(ns, name, commit)
        assert e.value.reason == "not_found"
    assert validator.list_files("alice", "m1", sha[:8])  # a commit prefix resolves to the full commit
    hub.fail_next("/api/models/alice/m1/revision", 403)
    with pytest.raises(ModelRejected) as e:
        validator.list_files("alice", "m1", sha)
    assert e.value.reason == "not_public"
    with pytest.raises(StoreError) as e:  # miner-side calls fail as store errors, not rejections
        store_for(hub, TOKEN).make_public("alice", "nope")
    assert not e.value.transient


def test_server_errors_are_retried_then_transient(hub, tmp_path):
    sha = hub.add_repo("alice/m1", {"config.json": b"{}", "model.safetensors": b"x" * 10})
    validator = store_for(hub)
    hub.fail_next("/api/models/alice/m1/revision", 500, 503)
    assert len(validator.list_files("alice", "m1", sha)) == 3
    assert hub.count("GET", "/api/models/alice/m1/revision") == 3
    hub.fail_next("/api/models/alice/m1/revision", 500, 500, 500)
    with pytest.raises(StoreError) as e:
        validator.list_files("alice", "m1", sha)
    assert e.value.transient
    # A file download that fails with 502 once still completes.
    hub.fail_next("/alice/m1/resolve/", 502)
    dest = validator.download("alice", "m1", sha, tmp_path / "d", max_bytes=1000)
    assert (dest / "model.safetensors").read_bytes() == b"x" * 10


def test_download_cut_off_midway_restarts_cleanly(hub, tmp_path):
    weights = bytes(range(256)) * 400
    sha = hub.add_repo("alice/m1", {"config.json": b"{}", "model.safetensors": weights})
    hub.cut_off["model.safetensors"] = 1
    dest = store_for(hub).download("alice", "m1", sha, tmp_path / "d", max_bytes=10**6)
    assert (dest / "model.safetensors").read_bytes() == weights
    assert hub.count("GET", "/alice/m1/resolve/") == 3  # config, the cut-off GET, the resumed GET
    # The half-received chunk never reached the file (the client reads 10 MB chunks), so the retry
    # starts from byte 0 rather than sending a Range; either way the result is the whole file.
    assert hub.ranges[-2:] == [("model.safetensors", None), ("model.safetensors", None)]
    assert not list(dest.rglob("*.incomplete"))


def test_repo_lying_about_its_size_is_stopped_while_streaming(hub, tmp_path):
    big = b"\x07" * 200_000
    sha = hub.add_repo("alice/m1", {"config.json": b"{}", "model.safetensors": big})
    hub.lie_size["model.safetensors"] = 100  # listing and HEAD say 100 bytes
    validator = store_for(hub)
    assert sum(f.size for f in validator.list_files("alice", "m1", sha)) < 10_000
    dest = tmp_path / "d"
    with pytest.raises(ModelRejected) as e:
        validator.download("alice", "m1", sha, dest, max_bytes=10_000)
    assert e.value.reason == "too_large"
    on_disk = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    assert on_disk < 10_000  # stopped at the budget, partial file removed
    # Within the budget, a size that differs from the announced one is refused too.
    hub.lie_size["model.safetensors"] = 150_000
    with pytest.raises(ModelRejected) as e:
        validator.download("alice", "m1", sha, tmp_path / "d2", max_bytes=10**6)
    assert e.value.reason == "size_mismatch"


def test_repo_with_pickle_or_code_is_refused_without_download(hub, tmp_path):
    sha = hub.add_repo("alice/m1", {
        "config.json": b"{}", "model.safetensors": b"x", "pytorch_model.bin": b"pickle", "modeling.py": b"import os",
    })
    validator = store_for(hub)
    with pytest.raises(ModelRejected) as e:
        validator.download("alice", "m1", sha, tmp_path / "d", max_bytes=10**6)
    assert e.value.reason == "forbidden_files" and "modeling.py" in e.value.detail
    assert hub.count("GET", "/alice/m1/resolve/") == 0 and hub.count("HEAD", "/alice/m1/resolve/") == 0


def test_hash_bound_to_hotkey_over_the_hub(hub, tmp_path):
    src = write_model(tmp_path / "src")
    owner = store_for(hub, TOKEN)
    commit = owner.upload(src, "alice", "m1")
    owner.make_public("alice", "m1")
    ref = ModelRef("alice", "m1", commit, secure_hash(directory_hash(src), HOTKEY), "tiny")
    with pytest.raises(ModelRejected) as e:
        fetch_verified(store_for(hub), ref, OTHER, small_competition(), tmp_path / "cache")
    assert e.value.reason == "hash_mismatch"
