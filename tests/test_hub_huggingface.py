"""HuggingFaceStore against a local fake Hub: the real huggingface_hub client code runs end to end."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from subnet.hub.byte_budget import ByteBudget
from subnet.hub.download import fetch_verified
from subnet.hub.errors import ModelRejected
from subnet.hub.hashing import directory_hash, secure_hash
from subnet.hub.hf_client import retry_after_s
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


def test_upload_with_a_token_that_cannot_write_says_what_the_token_needs(hub, tmp_path):
    src = write_model(tmp_path / "src")
    for token in ("hf_read_only", None):
        with pytest.raises(StoreError) as e:
            store_for(hub, token).upload(src, "alice", "m1")
        assert not e.value.transient and "write access" in str(e.value)
    assert "alice/m1" not in hub.repos


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


# ----------------------------------------------------------------------------- the large-file path


def big_weights(n: int = 11 * 1024 * 1024) -> bytes:
    """Over 10 MiB, so the Hub takes it through LFS whatever .gitattributes says; not all one byte."""
    return bytes(range(256)) * (n // 256)


def requests_to(hub: FakeHub, prefix: str) -> int:
    return sum(1 for _, p in hub.requests if p.startswith(prefix))


def test_large_model_goes_through_lfs_and_comes_back_through_the_validators_client(hub, tmp_path):
    owner, validator = store_for(hub, TOKEN), store_for(hub)
    weights = big_weights()
    src = write_model(tmp_path / "src", weights=weights, extra={"tokenizer.json": b'{"v": 1}'})
    commit = owner.upload(src, "alice", "big")

    # preupload said lfs for the weights: one batch call, one presigned PUT, one verify, an lfsFile entry.
    assert hub.count("POST", "/alice/big.git/info/lfs/objects/batch") == 1
    assert hub.count("PUT", "/lfs-upload/") == 1 and hub.count("POST", "/alice/big.git/info/lfs/objects/verify") == 1
    assert hub.repos["alice/big"].lfs[commit] == {"model.safetensors"}  # the small JSON files went inline
    assert requests_to(hub, "/api/models/alice/big/xet-") == 0  # xet is off: the client never asked for a token

    owner.make_public("alice", "big")
    sizes = {f.path: f.size for f in validator.list_files("alice", "big", commit)}
    assert sizes["model.safetensors"] == len(weights)
    competition = small_competition(max_bytes=20 * 1024 * 1024)
    ref = ModelRef("alice", "big", commit, secure_hash(directory_hash(src), HOTKEY), "tiny")
    path = fetch_verified(validator, ref, HOTKEY, competition, tmp_path / "cache")
    assert (path / "model.safetensors").read_bytes() == weights
    # The bytes came from the CDN the resolve endpoint redirected to, though the Hub advertised xet for them.
    assert hub.count("GET", "/lfs-cdn/") == 1 and requests_to(hub, "/api/models/alice/big/xet-") == 0

    # Uploading the same directory again changes nothing: preupload's oids match, no bytes are sent.
    assert owner.upload(src, "alice", "big") == commit
    assert hub.count("PUT", "/lfs-upload/") == 1


def test_with_xet_on_the_client_uploads_through_xet_whatever_the_hub_says(hub, tmp_path, monkeypatch):
    """The evidence for turning xet off: huggingface_hub 2.x asks for an xet write token unconditionally."""
    from huggingface_hub import constants

    pytest.importorskip("hf_xet")  # huggingface_hub installs it wherever it has a wheel
    owner = store_for(hub, TOKEN)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    with pytest.raises(StoreError):
        owner.upload(write_model(tmp_path / "src"), "alice", "m1")
    assert requests_to(hub, "/api/models/alice/m1/xet-write-token/") >= 1
    assert hub.count("POST", "/alice/m1.git/info/lfs/objects/batch") == 0


def test_repo_lying_about_a_large_file_is_stopped_on_the_cdn_path(hub, tmp_path):
    weights = big_weights()
    sha = hub.add_repo("alice/m1", {"config.json": b"{}", "model.safetensors": weights})
    assert "model.safetensors" in hub.repos["alice/m1"].lfs[sha]
    hub.lie_size["model.safetensors"] = 1000  # listing and X-Linked-Size say 1000 bytes
    budget = 2 * 1024 * 1024
    dest = tmp_path / "d"
    with pytest.raises(ModelRejected) as e:
        store_for(hub).download("alice", "m1", sha, dest, max_bytes=budget)
    assert e.value.reason == "too_large"
    assert hub.count("GET", "/lfs-cdn/") >= 1  # it was stopped on the CDN stream, not before
    on_disk = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    assert on_disk <= budget


def test_budget_counts_each_byte_once_and_stops_from_a_library_thread():
    """hf_xet's reporter drives two bars on our class from its own thread and swallows what we raise."""
    from huggingface_hub.utils._xet_progress_reporting import (
        XetDownloadProgressReporter,
    )

    class Report:  # the fields of hf_xet.GroupProgressReport, which Python cannot construct
        def __init__(self, done: int) -> None:
            self.total_bytes = self.total_transfer_bytes = 10_000
            self.total_bytes_completed = self.total_transfer_bytes_completed = done
            self.total_bytes_completion_rate = self.total_transfer_bytes_completion_rate = None

    aborted, swallowed = [], []
    reported = []
    budget = ByteBudget(1000, on_bytes=reported.append, abort=lambda: aborted.append(True))

    def xet_download(*done: int) -> None:
        def run() -> None:
            with XetDownloadProgressReporter(reconstruction_desc="f", total=done[-1], log_level=logging.WARNING,
                                             name="huggingface_hub.xet_get", tqdm_class=budget.bar) as progress:
                for d in done:
                    try:
                        progress.update_progress(Report(d), {})
                    except Exception as e:  # noqa: BLE001 - what hf_xet does with a callback's exception
                        swallowed.append(e)
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()

    xet_download(300, 600)  # a 600-byte file: two bars report 600 each, the budget sees 600
    assert budget.current == 600 and not budget.exceeded and not swallowed
    assert sum(reported) == 600  # the progress display sees each byte once too
    budget.file_done(600)
    xet_download(200, 500)  # 600 + 500 passes 1000
    assert budget.exceeded and aborted and swallowed


# ----------------------------------------------------------------------------- rate limits, xet errors, bad ids


def test_rate_limit_headers_are_read():
    assert retry_after_s({"Retry-After": "120"}) == 120
    assert retry_after_s({"RateLimit": '"api";r=0;t=55', "RateLimit-Policy": '"fixed window";"api";q=500;w=300'}) == 55
    assert retry_after_s({"RateLimit": '"api";r=3;t=55', "Retry-After": "7"}) == 7  # requests left: not the cause
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 90))
    assert 80 <= retry_after_s({"Retry-After": later}) <= 91
    assert retry_after_s({}) is None and retry_after_s({"Retry-After": "soon"}) is None


def test_long_rate_limit_defers_the_model_with_the_servers_delay(hub, tmp_path):
    sha = hub.add_repo("alice/m1", {"config.json": b"{}", "model.safetensors": b"x" * 10})
    validator = store_for(hub)
    hub.fail_next("/api/models/alice/m1/revision", 429, headers={"RateLimit": '"api";r=0;t=300'})
    with pytest.raises(StoreError) as e:
        validator.list_files("alice", "m1", sha)
    assert e.value.transient and e.value.retry_after_s == 300
    assert hub.count("GET", "/api/models/alice/m1/revision") == 1  # not hammered
    # The same on the file download path, where the client wraps the HEAD's 429 in its own error.
    hub.fail_next("/alice/m1/resolve/", 429, 429, headers={"Retry-After": "3600"})
    with pytest.raises(StoreError) as e:
        validator.download("alice", "m1", sha, tmp_path / "d", max_bytes=1000)
    assert e.value.transient and e.value.retry_after_s == 3600


def test_short_rate_limit_is_waited_out(hub):
    sha = hub.add_repo("alice/m1", {"config.json": b"{}", "model.safetensors": b"x" * 10})
    hub.fail_next("/api/models/alice/m1/revision", 429, headers={"Retry-After": "1"})
    started = time.monotonic()
    assert len(store_for(hub).list_files("alice", "m1", sha)) == 3
    assert time.monotonic() - started >= 1.0  # the server's delay, not the 0.05 s backoff
    assert hub.count("GET", "/api/models/alice/m1/revision") == 2


@pytest.mark.parametrize("error", [RuntimeError("Data processing error: CAS Client Error: Request failed"),
                                   ConnectionError("connection reset by the CAS")])
def test_xet_failures_are_transient(hub, error):
    calls = []

    def failing():
        calls.append(1)
        raise error

    with pytest.raises(StoreError) as e:
        store_for(hub)._call("download", failing, rejecting=True)
    assert e.value.transient and len(calls) == 3  # retried, then deferred: never the miner's fault


def test_repo_ids_the_hub_refuses_are_bad_refs_without_a_request(hub, tmp_path):
    validator = store_for(hub)
    for namespace, name in (("alice", "b--c"), ("alice", "m.git"), ("-alice", "m")):
        with pytest.raises(ModelRejected) as e:
            validator.list_files(namespace, name, "0123456789abcdef0123456789abcdef01234567")
        assert e.value.reason == "bad_ref" and "may not" in e.value.detail
    with pytest.raises(StoreError):
        store_for(hub, TOKEN).upload(write_model(tmp_path / "src"), "alice", "m..1")
    assert hub.requests == []


def test_rate_limits_surface_only_in_the_stores_own_calls(hub):
    """Other users of the process's client (the parquet data source) keep the client's own 429 retries."""
    from huggingface_hub.utils import http_backoff

    sha = hub.add_repo("alice/m1", {"config.json": b"{}", "model.safetensors": b"x" * 10})
    store_for(hub)  # configures the process-wide client
    hub.fail_next("/api/models/alice/m1/revision", 429, headers={"Retry-After": "0"})
    response = http_backoff("GET", f"{hub.url}/api/models/alice/m1/revision/{sha}", base_wait_time=0.01)
    assert response.status_code == 200 and hub.count("GET", "/api/models/alice/m1/revision") == 2
