"""LocalChain beyond the shared contract: several OS processes on one file, wall-clock blocks,
the commit rate limit, and the devnet helpers."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from subnet.chain.base import ChainError
from subnet.chain.local import LocalChain


def fake_wallet(hotkey: str) -> SimpleNamespace:
    """LocalChain only reads the hotkey address; child processes skip real key files this way."""
    return SimpleNamespace(hotkey=SimpleNamespace(ss58_address=hotkey))


def _writer(path: str, hotkey: str, count: int, results) -> None:
    chain = LocalChain(path, netuid=1, wallet=fake_wallet(hotkey))
    blocks = []
    for i in range(count):
        blocks.append(chain.commit(f"{hotkey}:{i}"))
        chain.advance(1)  # commits are rate limited per block, as on the real chain
    results.put(("writer", hotkey, blocks))
    chain.close()


def _reader(path: str, expect: dict[str, str], results) -> None:
    chain = LocalChain(path, netuid=1)
    deadline = time.monotonic() + 20
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        seen = {c.hotkey: c.data for c in chain.commitments()}
        if all(seen.get(k) == v for k, v in expect.items()):
            break
        time.sleep(0.01)
    results.put(("reader", seen))
    chain.close()


def test_processes_see_each_others_commitments(tmp_path):
    path = str(tmp_path / "chain.sqlite")
    admin = LocalChain(path, netuid=1, block_time=1000.0)
    hotkeys = ["5Writer1", "5Writer2"]
    for hk in hotkeys:
        admin.register(hk)
    count = 5
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    expect = {hk: f"{hk}:{count - 1}" for hk in hotkeys}
    procs = [ctx.Process(target=_reader, args=(path, expect, results))]
    procs += [ctx.Process(target=_writer, args=(path, hk, count, results)) for hk in hotkeys]
    for p in procs:
        p.start()
    messages = [results.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=10)
        assert p.exitcode == 0
    [(_, seen)] = [m for m in messages if m[0] == "reader"]
    assert seen == expect
    # The parent sees the final state too, each commitment with the block its writer was told.
    final = {c.hotkey: c for c in admin.commitments()}
    for _, hotkey, blocks in (m for m in messages if m[0] == "writer"):
        assert final[hotkey].block == blocks[-1]
        assert blocks == sorted(blocks) and len(set(blocks)) == count
    admin.close()


def test_blocks_follow_the_wall_clock(tmp_path):
    chain = LocalChain(tmp_path / "c.sqlite", block_time=0.05)
    start = chain.current_block()
    time.sleep(0.16)
    assert chain.current_block() >= start + 2
    chain.close()


def test_the_files_block_time_wins_and_can_be_changed_without_a_jump(tmp_path):
    path = tmp_path / "c.sqlite"
    first = LocalChain(path, block_time=1000.0)
    first.advance(40)
    second = LocalChain(path, block_time=0.001)  # a late opener cannot speed the chain up
    assert second.block_time == 1000.0
    assert second.current_block() == first.current_block() == 40
    second.set_block_time(500.0)
    assert first.block_time == 500.0 and first.current_block() == 40
    first.close()
    second.close()


def test_block_hashes_differ_between_subnets(tmp_path):
    a = LocalChain(tmp_path / "c.sqlite", netuid=1)
    b = LocalChain(tmp_path / "c.sqlite", netuid=2)
    assert a.block_hash(0) != b.block_hash(0)
    assert a.block_hash(0) == LocalChain(tmp_path / "c.sqlite", netuid=1).block_hash(0)
    with pytest.raises(ChainError) as e:
        a.block_hash(-1)
    assert e.value.code == "unknown_block"


def test_one_commit_per_block_per_hotkey(tmp_path):
    chain = LocalChain(tmp_path / "c.sqlite", wallet=fake_wallet("5Miner"), block_time=1000.0)
    chain.register("5Miner")
    block = chain.commit("one")
    with pytest.raises(ChainError) as e:
        chain.commit("two")
    assert e.value.code == "rate_limited"
    assert [c.data for c in chain.commitments()] == ["one"]
    chain.set_commit_rate_limit(3)
    chain.advance(2)
    with pytest.raises(ChainError):
        chain.commit("two")
    chain.advance(1)
    assert chain.commit("two") == block + 3


def test_register_is_idempotent_and_updates_the_neuron(tmp_path):
    chain = LocalChain(tmp_path / "c.sqlite")
    assert [chain.register(h) for h in ("5A", "5B", "5C")] == [0, 1, 2]
    assert chain.register("5B", "5Cold", stake=7.0, validator_permit=True) == 1
    neuron = chain.metagraph().neurons[1]
    assert (neuron.coldkey, neuron.stake, neuron.validator_permit) == ("5Cold", 7.0, True)
    with pytest.raises(ValueError):
        chain.register("")


def test_weights_are_normalised_and_kept_in_history(tmp_path):
    chain = LocalChain(tmp_path / "c.sqlite", wallet=fake_wallet("5V"), block_time=1000.0)
    chain.register("5V", validator_permit=True)
    for h in ("5M1", "5M2"):
        chain.register(h)
    chain.set_weights_rate_limit(5)
    assert chain.set_weights([1, 2], [1.0, 3.0], 1).success
    chain.advance(5)
    assert chain.set_weights([1, 2, 0], [2.0, 0.0, 2.0], 1).success
    assert chain.weights_of("5V") == {1: 0.5, 0: 0.5}  # zeros dropped, sum 1
    assert chain.weights_of("5Nobody") == {}
    history = chain.weight_history()
    assert [h.weights for h in history] == [{1: 0.25, 2: 0.75}, {1: 0.5, 0: 0.5}]
    assert history[1].block - history[0].block == 5
    result = chain.set_weights([7], [1.0], 1)  # uid 7 does not exist
    assert (result.success, result.code) == (False, "invalid_weights")


def test_weights_need_a_validator_permit(tmp_path):
    chain = LocalChain(tmp_path / "c.sqlite", wallet=fake_wallet("5V"), block_time=1000.0)
    uid = chain.register("5V", stake=10.0)
    refused = chain.set_weights([uid], [1.0], 1)
    assert (refused.success, refused.code) == (False, "no_permit")
    assert "validator permit" in refused.message and chain.weight_history() == []
    assert chain.metagraph().neurons[uid].last_update == 0  # a refusal changes nothing
    chain.register("5V", stake=10.0, validator_permit=True)  # permit granted
    assert chain.set_weights([uid], [1.0], 1).success


def test_deregister_frees_the_uid_for_the_next_registration(tmp_path):
    chain = LocalChain(tmp_path / "c.sqlite", wallet=fake_wallet("5A"), block_time=1000.0)
    assert [chain.register(h) for h in ("5A", "5B", "5C")] == [0, 1, 2]
    chain.commit("a's model")
    assert chain.deregister("5A") == 0
    graph = chain.metagraph()
    assert graph.hotkeys == ["5B", "5C"] and graph.uid_of("5A") is None
    assert chain.commitments() == []  # a deregistered hotkey's commitment is no longer listed
    with pytest.raises(ChainError) as e:
        chain.commit("again")
    assert e.value.code == "not_registered"
    with pytest.raises(ChainError) as e:
        chain.deregister("5A")
    assert e.value.code == "not_registered"
    assert chain.register("5New") == 0  # the freed uid is reused by another hotkey
    assert chain.register("5D") == 3
    assert chain.register("5A") == 4  # coming back is a new registration, at a new uid
    assert [c.data for c in chain.commitments()] == ["a's model"]  # stored by hotkey, as on chain


def test_real_wallet_signs_on_the_local_chain(tmp_path):
    from subnet.chain.keys import create_wallet  # imported here: spawned children import this module

    wallet = create_wallet(tmp_path / "wallets", "miner")
    again = create_wallet(tmp_path / "wallets", "miner")
    assert again.hotkey.ss58_address == wallet.hotkey.ss58_address  # keys are reused, not regenerated
    assert again.coldkeypub.ss58_address == wallet.coldkeypub.ss58_address
    other = create_wallet(tmp_path / "wallets", "miner", hotkey="second")
    assert other.hotkey.ss58_address != wallet.hotkey.ss58_address
    assert other.coldkeypub.ss58_address == wallet.coldkeypub.ss58_address  # same coldkey, new hotkey
    assert not wallet.hotkey_file.is_encrypted()
    chain = LocalChain(tmp_path / "c.sqlite", wallet=wallet)
    chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address)
    block = chain.commit("x")
    assert [(c.hotkey, c.block) for c in chain.commitments()] == [(wallet.hotkey.ss58_address, block)]
    with pytest.raises(ValueError):
        create_wallet(tmp_path / "wallets", "a/b")


def test_closed_chain_refuses_calls(tmp_path):
    chain = LocalChain(Path(tmp_path) / "c.sqlite")
    chain.close()
    chain.close()  # idempotent
    with pytest.raises(ChainError) as e:
        chain.current_block()
    assert e.value.code == "closed"


# ----------------------------------------------------------------------------- commit-reveal, locks, rules


def test_commit_reveal_commits_and_reveals_later(tmp_path):
    chain = LocalChain(tmp_path / "c.sqlite", wallet=fake_wallet("5V"), block_time=1000.0)
    chain.register("5V", validator_permit=True)
    chain.register("5M")
    chain.set_weights_rate_limit(2)
    chain.set_commit_reveal(True, reveal_period=3)
    chain.advance(10)  # as on the real chain, LastUpdate 0 means "never set"
    assert chain.commit_reveal
    result = chain.set_weights([1], [1.0], 1)
    assert result.success and result.committed and result.reveal_round == result.block + 3
    assert chain.pending_commits() == [("5V", result.block, result.block + 3)]
    assert chain.weights_of("5V") == {} and chain.weight_history() == []  # a commit is not weights
    assert chain.metagraph().neurons[0].last_update == result.block  # but it counts for the rate limit
    assert chain.set_weights([1], [1.0], 1).code == "rate_limited"
    chain.advance(3)
    assert chain.weights_of("5V") == {1: 1.0} and chain.pending_commits() == []
    [applied] = chain.weight_history()
    assert applied.block == result.block + 3  # applied at the reveal block


def test_a_commit_of_a_deregistered_validator_is_dropped_at_reveal(tmp_path):
    chain = LocalChain(tmp_path / "c.sqlite", wallet=fake_wallet("5V"), block_time=1000.0)
    chain.register("5V", validator_permit=True)
    chain.set_commit_reveal(True, reveal_period=2)
    assert chain.set_weights([0], [1.0], 1).committed
    chain.deregister("5V")
    chain.advance(2)
    assert chain.weight_history() == [] and chain.pending_commits() == []


@pytest.mark.parametrize("min_allowed", [1024, 8])
def test_min_allowed_weights_fills_every_uid_on_a_small_subnet(tmp_path, min_allowed):
    chain = LocalChain(tmp_path / "c.sqlite", wallet=fake_wallet("5V"), block_time=1000.0)
    for h in ("5V", "5A", "5B", "5C"):
        chain.register(h, validator_permit=h == "5V")
    chain.set_min_allowed_weights(min_allowed)
    assert chain.set_weights([2, 1], [1.0, 0.0], 1).success
    weights = chain.weights_of("5V")
    assert set(weights) == {0, 1, 2, 3}
    assert weights[2] > 0.999 and weights[0] == weights[1] == weights[3] > 0


def test_a_locked_chain_database_is_a_chain_error(tmp_path, monkeypatch):
    import sqlite3

    import subnet.chain.local as local

    monkeypatch.setattr(local, "_BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "c.sqlite"
    chain = LocalChain(path, wallet=fake_wallet("5V"), block_time=1000.0)
    chain.register("5V", validator_permit=True)
    blocker = sqlite3.connect(str(path), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        for call in (lambda: chain.set_weights([0], [1.0], 1), lambda: chain.commit("x"),
                     lambda: chain.register("5Other")):
            with pytest.raises(ChainError) as e:
                call()
            assert e.value.code == "unavailable" and "locked" in str(e.value)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert chain.set_weights([0], [1.0], 1).success  # usable again once the lock is gone
    chain.close()


def test_an_old_chain_file_gains_the_registration_block(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE neurons (uid INTEGER PRIMARY KEY, hotkey TEXT NOT NULL UNIQUE, coldkey TEXT NOT NULL,"
               " stake REAL NOT NULL, validator_permit INTEGER NOT NULL, last_update INTEGER NOT NULL DEFAULT 0)")
    db.execute("INSERT INTO neurons VALUES (0, '5Old', '5Cold', 1.0, 0, 0)")
    db.commit()
    db.close()
    chain = LocalChain(path)
    assert chain.metagraph().neurons[0].block_at_registration == 0
    chain.advance(7)
    uid = chain.register("5New")
    assert chain.metagraph().neurons[uid].block_at_registration == chain.current_block()
    chain.close()
