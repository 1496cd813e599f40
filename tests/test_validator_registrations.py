"""Hotkeys come and go: the validator records who held which uid each round, drops the EMA of
hotkeys that left, starts re-registered hotkeys (and new hotkeys at reused uids) from nothing,
never sends weight to a hotkey outside the current metagraph, and reports a missing validator
permit without retrying.

The round runs for real (LocalChain, LocalStore, SQLite state, the whole `run_round`), with
commitments to repos that do not exist, so no model is scored and the EMA seeded below is what
gets carried.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from types import SimpleNamespace

import pytest

from subnet.chain.local import LocalChain
from subnet.competitions import DEFAULT_COMPETITIONS
from subnet.hub.model_ref import ModelRef
from subnet.validator import state as st
from subnet.validator.config import ValidatorConfig
from subnet.validator.round import RoundDeps, run_round
from subnet.validator.score_table import scores_table
from subnet.validator.state import ValidatorState
from subnet.validator.weighting import carried_ema, new_registrations

TINY = {"tiny": DEFAULT_COMPETITIONS["tiny"]}


def fake_wallet(hotkey: str) -> SimpleNamespace:
    return SimpleNamespace(hotkey=SimpleNamespace(ss58_address=hotkey))


# ----------------------------------------------------------------------------- state: stints


def _record_round(state: ValidatorState, block: int, registered: dict[str, int], ema=None) -> int:
    rid = state.start_round(block, "0xseed")
    state.complete_scoring(rid, [], [], ema or {}, [], registered=registered)
    state.finish_round(rid, st.ROUND_DONE)
    return rid


def test_registrations_are_recorded_as_stints(tmp_path):
    state = ValidatorState(tmp_path / "s.sqlite")
    assert state.current_registrations() is None  # nothing recorded: nobody is known to have left
    r1 = _record_round(state, 100, {"a": 0, "b": 1})
    r2 = _record_round(state, 110, {"a": 0, "b": 1})
    assert {hk: (r.uid, r.first_block, r.last_block) for hk, r in state.current_registrations().items()} == {
        "a": (0, 100, 110), "b": (1, 100, 110)}
    # b leaves; c takes its uid; then b comes back at another uid: a new stint, not an extension.
    r3 = _record_round(state, 120, {"a": 0, "c": 1})
    r4 = _record_round(state, 130, {"a": 0, "c": 1, "b": 2})
    assert set(state.current_registrations()) == {"a", "b", "c"}
    assert [(r.uid, r.first_round, r.last_round) for r in state.registrations("b")] == [(1, r1, r2), (2, r4, r4)]
    assert [(r.uid, r.first_round) for r in state.registrations("c")] == [(1, r3)]
    assert len(state.registrations()) == 4  # a's one stint spans all four rounds
    # A round without a registration record (e.g. an old caller) leaves the last record in place.
    rid = state.start_round(140)
    state.complete_scoring(rid, [], [], {}, [])
    assert set(state.current_registrations()) == {"a", "b", "c"}
    # An empty metagraph is recorded as empty, not as "unknown".
    _record_round(state, 150, {})
    assert state.current_registrations() == {}
    state.close()


def test_a_failed_complete_scoring_records_no_registrations(tmp_path):
    state = ValidatorState(tmp_path / "s.sqlite")
    rid = state.start_round(100)
    state.finish_round(rid, st.ROUND_FAILED)
    with pytest.raises(st.StateError):
        state.complete_scoring(rid, [], [], {}, [], registered={"a": 0})
    assert state.current_registrations() is None and state.registrations() == []
    state.close()


def test_new_registrations_and_carried_ema():
    assert new_registrations(None, {"a": 0}) == set()  # no record yet: keep everyone's EMA
    previous = {"a": 0, "b": 1}
    assert new_registrations(previous, {"a": 0, "b": 1}) == set()
    assert new_registrations(previous, {"a": 0, "c": 1}) == {"c"}  # new hotkey at a reused uid
    assert new_registrations(previous, {"a": 0, "b": 2}) == {"b"}  # moved: re-registered
    ema = {"a": 0.5, "b": 0.3, "gone": 0.2}
    assert carried_ema(ema, {"a": 0, "b": 2}, {"b"}) == {"a": 0.5}


# ----------------------------------------------------------------------------- whole rounds


class World:
    """A LocalChain with a validator and miners whose commitments name no downloadable model."""

    def __init__(self, root, *, permit: bool = True) -> None:
        self.chain_path = root / "chain.sqlite"
        self.admin = LocalChain(self.chain_path, block_time=1000.0)
        self.admin.advance(1000)
        self.admin.set_weights_rate_limit(1)
        self.admin.set_commit_rate_limit(0)
        self.validator_uid = self.admin.register("5V", stake=1000.0, validator_permit=permit)
        self.config = ValidatorConfig(network=f"devnet:{self.chain_path}", state_dir=root / "state",
                                      store=f"local:{root / 'store'}", competitions=("tiny",), api_port=0,
                                      weights_interval_blocks=1, weights_retries=3, min_free_disk_bytes=0,
                                      seed_window_blocks=10, eligibility_margin_blocks=2)
        self.state = ValidatorState(self.config.db_path)
        self.chain = LocalChain(self.chain_path, wallet=fake_wallet("5V"))

        def unused(*_):
            raise AssertionError("no model should be fetched or scored in these rounds")

        from subnet.hub.local import LocalStore

        self.deps = RoundDeps(chain=self.chain, store=LocalStore(root / "store"), state=self.state,
                              config=self.config, competitions=TINY, known_competitions=TINY,
                              source_for=unused, scorer=unused)

    def join(self, hotkey: str) -> int:
        uid = self.admin.register(hotkey)
        miner = LocalChain(self.chain_path, wallet=fake_wallet(hotkey))
        digest = base64.b64encode(hashlib.sha256(hotkey.encode()).digest()).decode()
        miner.commit(ModelRef("nobody", hotkey, "abcdef1", digest, "tiny").encode())  # no such repo

        miner.close()
        return uid

    def seed_ema(self, ema: dict[str, float]) -> None:
        """The EMA a past round left behind, with the metagraph of that round."""
        graph = self.chain.metagraph()
        rid = self.state.start_round(graph.block, "0xseed")
        self.state.complete_scoring(rid, [], [], {"tiny": ema}, [],
                                    registered={n.hotkey: n.uid for n in graph.neurons})
        self.state.finish_round(rid, st.ROUND_DONE)

    def round(self):
        self.admin.advance(5)
        return run_round(self.deps)

    def on_chain(self) -> dict[int, float]:
        return self.admin.weights_of("5V")

    def close(self) -> None:
        for c in (self.chain, self.admin, self.state):
            c.close()


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    yield w
    w.close()


def test_departed_hotkeys_lose_their_weight_and_a_reused_uid_starts_fresh(world):
    a, b = world.join("5A"), world.join("5B")
    world.seed_ema({"5A": 0.6, "5B": 0.4})
    summary = world.round()
    assert summary.weights_status == st.ROUND_WEIGHTS_SET
    assert world.on_chain() == pytest.approx({a: 0.6, b: 0.4})

    world.admin.deregister("5A")
    assert world.join("5C") == a  # C takes A's uid
    summary = world.round()
    assert summary.weights_status == st.ROUND_WEIGHTS_SET
    assert world.state.ema("tiny") == {"5B": 0.4}  # A's EMA is gone; C inherits nothing
    assert world.on_chain() == pytest.approx({b: 1.0})  # uid a (now C's) gets nothing
    attempt = [x for x in world.state.weight_attempts() if x.status == st.ATTEMPT_SUCCESS][-1]
    assert attempt.uids == [b]

    # The scores table shows the current field; the departed only when asked, with their last uid.
    rows = {r["hotkey"]: r for r in scores_table(world.state, current_block=world.chain.current_block())}
    assert set(rows) == {"5B", "5C"}
    assert rows["5C"]["uid"] == a and rows["5C"]["weight"] == 0.0
    assert rows["5B"]["uid"] == b and rows["5B"]["weight"] == 0.4
    everyone = {r["hotkey"]: r for r in scores_table(world.state, include_deregistered=True)}
    gone = everyone["5A"]
    assert (gone["status"], gone["uid"], gone["weight"]) == ("deregistered", None, 0.0)
    assert f"as uid {a}" in gone["reason"]
    assert list(everyone)[-1] == "5A"  # listed after the registered hotkeys


def test_a_re_registered_hotkey_starts_from_nothing(world):
    world.join("5A")
    b = world.join("5B")
    world.seed_ema({"5A": 0.5, "5B": 0.5})
    world.round()
    # Between two rounds B leaves, D takes B's uid, and B registers again at a new uid.
    world.admin.deregister("5B")
    assert world.join("5D") == b
    new_b = world.join("5B")
    assert new_b != b
    world.round()
    assert world.state.ema("tiny") == {"5A": 0.5}  # B's old EMA does not follow it to the new uid
    rows = {r["hotkey"]: r for r in scores_table(world.state)}
    assert rows["5B"]["uid"] == new_b and rows["5B"]["status"] != "deregistered" and rows["5B"]["weight"] == 0.0
    assert [r.uid for r in world.state.registrations("5B")] == [b, new_b]


def test_a_state_without_registrations_keeps_its_ema(world):
    """The first round after upgrading (no registrations recorded yet) must not wipe the EMA."""
    a = world.join("5A")
    rid = world.state.start_round(world.chain.current_block(), "0xseed")
    world.state.complete_scoring(rid, [], [], {"tiny": {"5A": 1.0}}, [])  # as an older validator did
    world.state.finish_round(rid, st.ROUND_DONE)
    world.round()
    assert world.state.ema("tiny") == {"5A": 1.0} and world.on_chain() == {a: 1.0}


def test_no_validator_permit_is_reported_and_not_retried(tmp_path, caplog):
    world = World(tmp_path, permit=False)
    try:
        world.join("5A")
        world.seed_ema({"5A": 1.0})
        with caplog.at_level(logging.ERROR, logger="subnet.validator.round"):
            summary = world.round()
        assert summary.weights_status == st.ROUND_DONE
        attempts = world.state.weight_attempts(summary.round_id)
        assert [(x.status, "validator permit" in (x.message or "")) for x in attempts] == [
            (st.ATTEMPT_FAILED, True)]  # one attempt: a retry cannot grant a permit
        assert "no validator permit" in caplog.text
        assert world.on_chain() == {}
    finally:
        world.close()


def test_resuming_a_round_leaves_out_hotkeys_that_re_registered_meanwhile(world):
    from subnet.validator.round import finish_weights

    a = world.join("5A")
    b = world.join("5B")
    graph = world.chain.metagraph()
    rid = world.state.start_round(graph.block, "0xseed")
    world.state.complete_scoring(rid, [], [], {"tiny": {"5A": 0.5, "5B": 0.5}}, [],
                                 registered={n.hotkey: n.uid for n in graph.neurons})
    # The validator stops after scoring; meanwhile B leaves, C takes its uid and B registers anew.
    world.admin.deregister("5B")
    assert world.join("5C") == b
    new_b = world.join("5B")
    world.admin.advance(5)
    graph = world.chain.metagraph()
    assert finish_weights(world.deps, rid, graph, graph.block) == st.ROUND_WEIGHTS_SET
    assert world.on_chain() == {a: 1.0}  # neither C (B's old uid) nor B's new uid is paid B's EMA
    assert new_b not in world.on_chain()
