"""Publishing on the local chain and store: commit once, publish after the commitment, finish after failures."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from subnet.chain.keys import create_wallet
from subnet.chain.local import LocalChain
from subnet.competitions import get_competition
from subnet.hub.download import fetch_verified
from subnet.hub.errors import ModelRejected
from subnet.hub.hashing import directory_hash, secure_hash
from subnet.hub.local import LocalStore
from subnet.hub.model_ref import ModelRef
from subnet.hub.store import StoreError
from subnet.miner.chain_models import best_model_on_chain
from subnet.commands.miner_commands import app
from subnet.miner.upload import UploadError, UploadOptions, upload_model
from tests.miner_run import quiet, trained_run

TINY = get_competition("tiny")


@pytest.fixture
def world(tmp_path):
    """A local chain with one registered miner, a local store, and the trained run's models."""
    wallet = create_wallet(tmp_path / "wallets", "miner")
    chain = LocalChain(tmp_path / "chain.sqlite", wallet=wallet)
    hotkey = wallet.hotkey.ss58_address
    chain.register(hotkey)
    result, out = trained_run()
    yield {"chain": chain, "store": LocalStore(tmp_path / "store"), "hotkey": hotkey, "tmp": tmp_path,
           "final": result.model_dir, "early": out / "checkpoints/step_00000005/model",
           "late": out / "checkpoints/step_00000195/model"}
    chain.close()


def committed(chain, hotkey):
    return next((c for c in chain.commitments() if c.hotkey == hotkey), None)


def test_upload_commits_the_served_hash_then_makes_the_repo_public(world):
    chain, store, hotkey = world["chain"], world["store"], world["hotkey"]
    ref = upload_model(world["final"], store, chain, hotkey, "miner", "tiny-a", TINY, echo=quiet)
    assert ModelRef.parse(committed(chain, hotkey).data) == ref
    assert ref.repo_id == "miner/tiny-a" and ref.competition_id == "tiny"
    assert ref.secure_hash == secure_hash(directory_hash(world["final"]), hotkey)
    # Exactly what a validator does next succeeds: the repo is public and the hash is bound to the hotkey.
    path = fetch_verified(store, ref, hotkey, TINY, world["tmp"] / "cache")
    assert directory_hash(path) == directory_hash(world["final"])
    with pytest.raises(ModelRejected, match="hash_mismatch"):
        fetch_verified(store, ref, "5SomeoneElse", TINY, world["tmp"] / "cache2")


class FailingMakePublic:
    """The real LocalStore, except that making the repo public fails once (a network fault mid-way)."""

    def __init__(self, store: LocalStore) -> None:
        self.store, self.failures = store, 1

    def __getattr__(self, name):
        return getattr(self.store, name)

    def make_public(self, namespace: str, name: str) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreError("connection reset while updating repo settings", transient=True)
        self.store.make_public(namespace, name)


def test_rerun_after_a_failure_midway_finishes_without_committing_twice(world):
    chain, store, hotkey = world["chain"], world["store"], world["hotkey"]
    with pytest.raises(StoreError):
        upload_model(world["final"], FailingMakePublic(store), chain, hotkey, "miner", "tiny-b", TINY, echo=quiet)
    first = committed(chain, hotkey)
    assert first is not None  # committed before the failure ...
    ref = ModelRef.parse(first.data)
    with pytest.raises(ModelRejected, match="not_public"):  # ... and the weights are still private
        store.list_files(ref.namespace, ref.name, ref.commit)

    chain.advance(50)
    lines: list[str] = []
    again = upload_model(world["final"], store, chain, hotkey, "miner", "tiny-b", TINY, echo=lines.append)
    assert again == ref
    assert committed(chain, hotkey) == first  # same block: the model keeps its birth, and its advantage
    assert any("not committing again" in line for line in lines)
    assert store.list_files(ref.namespace, ref.name, ref.commit)  # public now
    chain.advance(5)
    assert upload_model(world["final"], store, chain, hotkey, "miner", "tiny-b", TINY, echo=quiet) == ref
    assert committed(chain, hotkey) == first


def test_refuses_a_model_that_cannot_win_unless_forced(world):
    chain, store, hotkey = world["chain"], world["store"], world["hotkey"]
    with pytest.raises(UploadError, match="would not win"):
        upload_model(world["early"], store, chain, hotkey, "miner", "tiny-c", TINY,
                     UploadOptions(incumbent_dir=world["final"], device="cpu"), echo=quiet)
    assert committed(chain, hotkey) is None
    ref = upload_model(world["early"], store, chain, hotkey, "miner", "tiny-c", TINY,
                       UploadOptions(force=True, incumbent_dir=world["final"]), echo=quiet)
    assert committed(chain, hotkey).data == ref.encode()


def test_refuses_a_directory_validators_would_reject(world):
    bad = world["tmp"] / "bad"
    shutil.copytree(world["final"], bad)
    (bad / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(UploadError, match="forbidden_files"):
        upload_model(bad, world["store"], world["chain"], world["hotkey"], "miner", "tiny-d", TINY, echo=quiet)
    assert committed(world["chain"], world["hotkey"]) is None


def _second_miner(world, name: str, model_dir):
    wallet = create_wallet(world["tmp"] / "wallets", name)
    world["chain"].register(wallet.hotkey.ss58_address)
    chain = LocalChain(world["tmp"] / "chain.sqlite", wallet=wallet)
    ref = upload_model(model_dir, world["store"], chain, wallet.hotkey.ss58_address, name, "model", TINY, echo=quiet)
    return wallet.hotkey.ss58_address, ref, chain


def test_best_model_on_chain_follows_validator_weights_then_the_latest_commitment(world):
    chain = world["chain"]
    a_hotkey, a_ref, a_chain = _second_miner(world, "alice", world["late"])
    chain.advance(3)
    b_hotkey, b_ref, b_chain = _second_miner(world, "bob", world["final"])
    cache = world["tmp"] / "cache"
    assert best_model_on_chain(chain, world["store"], TINY, cache).ref == b_ref  # no weights: the latest
    validator = create_wallet(world["tmp"] / "wallets", "validator")
    chain.register(validator.hotkey.ss58_address, stake=1000.0, validator_permit=True)
    v_chain = LocalChain(world["tmp"] / "chain.sqlite", wallet=validator)
    uids = {n.hotkey: n.uid for n in chain.metagraph().neurons}
    assert v_chain.set_weights([uids[a_hotkey], uids[b_hotkey]], [0.9, 0.1], version_key=1).success
    best = best_model_on_chain(chain, world["store"], TINY, cache)
    assert best.ref == a_ref and best.hotkey == a_hotkey and best.path.is_dir()
    assert best_model_on_chain(chain, world["store"], TINY, cache, exclude_hotkeys={a_hotkey}).ref == b_ref
    for c in (a_chain, b_chain, v_chain):
        c.close()


def test_cli_upload_on_devnet_benchmarks_against_the_chain_incumbent(world):
    # An incumbent the candidate clearly beats: on the one loss (total NLL over total tokens) step 200
    # is not better than step 195, so that pair would (rightly) be refused.
    _, incumbent_ref, other = _second_miner(world, "carol", world["early"])
    other.close()
    args = [
        "upload", str(world["final"]), "--namespace", "miner", "--name", "tiny-cli", "--competition", "tiny",
        "--network", f"devnet:{world['tmp'] / 'chain.sqlite'}", "--netuid", "1",
        "--store", f"local:{world['tmp'] / 'store'}", "--wallet.path", str(world["tmp"] / "wallets"),
        "--wallet.name", "miner", "--wallet.hotkey", "default", "--incumbent", "chain",
        "--incumbent-age-blocks", "0", "--device", "cpu", "--cache-dir", str(world["tmp"] / "cache"),
    ]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    ref = ModelRef.parse(run.stdout.strip().splitlines()[-1])
    assert f"incumbent on chain: {incumbent_ref.short()}" in run.stdout
    assert "benchmark:" in run.stdout
    # The verdict uses the validators' default advantage, as `subnet miner benchmark` does: in mode
    # "earned" an incumbent of unknown earnings may hold the cap (1%), not eps0.
    assert TINY.advantage.mode == "earned" and "incumbent advantage 1.0000%" in run.stdout
    assert committed(world["chain"], world["hotkey"]).data == ref.encode()


def test_training_starts_from_the_best_model_on_chain_or_a_directory(world):
    from subnet.miner.config import TrainConfig
    from subnet.miner.train import train

    _second_miner(world, "dave", world["final"])[2].close()
    common = dict(competition="tiny", steps=3, seq_len=32, micro_batch_size=2, warmup_steps=1, lr=1e-4,
                  reference_documents=20, docs_per_chunk=20, device="cpu")
    scratch = train(TrainConfig(out_dir=str(world["tmp"] / "s"), **common), echo=quiet)
    on_chain = train(TrainConfig(out_dir=str(world["tmp"] / "c"), init="chain", **common),
                     chain=world["chain"], store=world["store"], echo=quiet)
    from_dir = train(TrainConfig(out_dir=str(world["tmp"] / "d"), init=str(world["final"]), **common), echo=quiet)
    # A trained start begins where the 200-step run ended (loss ~3), far below a fresh model (~7.4).
    assert on_chain.losses[0] < scratch.losses[0] - 2
    assert on_chain.losses == from_dir.losses  # the chain's model is byte for byte the directory's
    with pytest.raises(ValueError, match="needs a chain"):
        train(TrainConfig(out_dir=str(world["tmp"] / "e"), init="chain", **common), echo=quiet)


class CommitGoesNowhere:
    """The real LocalChain, except that a commit is acknowledged but never lands (a dropped extrinsic)."""

    def __init__(self, chain: LocalChain) -> None:
        self.chain = chain

    def __getattr__(self, name):
        return getattr(self.chain, name)

    def commit(self, data: str) -> int:
        return self.chain.current_block()


def test_a_commitment_that_never_lands_keeps_the_repo_private(world, monkeypatch):
    import subnet.miner.upload as upload

    monkeypatch.setattr(upload, "READBACK_WAIT_S", 0.0)
    with pytest.raises(UploadError, match="stays private"):
        upload_model(world["final"], world["store"], CommitGoesNowhere(world["chain"]), world["hotkey"], "miner",
                     "tiny-e", TINY, echo=quiet)
    commit = world["store"].upload(world["final"], "miner", "tiny-e")
    with pytest.raises(ModelRejected, match="not_public"):
        world["store"].list_files("miner", "tiny-e", commit)


class CommitOutcomeLost(CommitGoesNowhere):
    """The commit lands, but the chain adapter cannot tell (a lost watch): ChainError('unknown_outcome')."""

    def commit(self, data: str) -> int:
        from subnet.chain.base import ChainError

        self.chain.commit(data)
        raise ChainError("commit: outcome unknown after submission", code="unknown_outcome")


def test_a_commit_with_an_unknown_outcome_is_read_back_not_failed(world):
    ref = upload_model(world["final"], world["store"], CommitOutcomeLost(world["chain"]), world["hotkey"], "miner",
                       "tiny-u", TINY, echo=quiet)
    assert committed(world["chain"], world["hotkey"]).data == ref.encode()  # it landed: the upload finished
