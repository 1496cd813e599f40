"""The round's window: models already scored in it are not scored again, spare rounds backfill older
windows, a fresh validator plans the model the chain's consensus pays first, and agreement with the
chain's consensus is measured from the chain's own epoch."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from subnet.chain.base import Metagraph, Neuron
from subnet.chain.local import LocalChain
from subnet.competitions import DEFAULT_COMPETITIONS
from subnet.eval.types import STATUS_OK, DocLosses
from subnet.validator.agreement import assess_agreement
from subnet.validator.config import ValidatorConfig
from subnet.validator.round import plan, plan_window
from subnet.validator.state import ValidatorState, WindowScore

TINY = DEFAULT_COMPETITIONS["tiny"]


@pytest.fixture
def state(tmp_path):
    s = ValidatorState(tmp_path / "state.sqlite")
    yield s
    s.close()


def deps(budget: int = 16, **competition):
    config = ValidatorConfig(max_models_per_round=budget, seed_window_blocks=150, eligibility_margin_blocks=10,
                             backfill_windows=4)
    return SimpleNamespace(config=config, competitions={"tiny": dataclasses.replace(TINY, **competition)})


def add(state, hotkey, block):
    m = state.upsert_commitment(hotkey, None, f"ns:{hotkey}:abc1234:h:tiny", block, "tiny")
    state.mark_verified(m.id, f"/m/{m.id}", f"hash-{hotkey}")
    return state.model(m.id)


def scored(state, window, *records):
    losses = DocLosses(np.ones(4), np.full(4, 2), np.full(4, 8), np.full(4, STATUS_OK, dtype=np.int8)).to_bytes()
    rid = state.start_round(window + 5, window=window)
    state.complete_scoring(rid, [], [], {}, window_scores=[
        WindowScore("tiny", window, r.id, r.hotkey, 4, 4, "d", losses) for r in records])


def test_a_model_scored_in_this_window_is_not_planned_again_and_spare_rounds_backfill(state):
    a, b = add(state, "a", 100), add(state, "b", 200)
    models = {m.hotkey: m for m in (a, b)}
    block = 1_050  # window 1050
    window, schedule = plan_window(state, models, block, deps(), set(), {})
    assert window == 1_050 and set(schedule.selected["tiny"]) == {"a", "b"}
    scored(state, 1_050, a, b)
    # Both scored in this window: the round backfills the newest earlier window, for the models in play.
    window, schedule = plan_window(state, models, block + 60, deps(), set(), {})
    assert window == 900 and set(schedule.selected["tiny"]) == {"a", "b"}
    scored(state, 900, a, b)
    window, schedule = plan_window(state, models, block + 70, deps(), set(), {})
    assert window == 750


def test_backfill_never_scores_a_model_on_documents_chosen_after_its_commitment(state):
    a, late = add(state, "a", 100), add(state, "late", 1_000)
    models = {m.hotkey: m for m in (a, late)}
    scored(state, 1_050, a, late)
    window, schedule = plan_window(state, models, 1_100, deps(), set(), {})
    assert window == 900 and schedule.selected["tiny"] == ("a",)  # `late` was committed after block 890


def test_a_fresh_validators_first_schedule_contains_the_consensus_leader(state):
    models = {m.hotkey: m for m in (add(state, f"new{i}", 100 + i) for i in range(6))}
    models["leader"] = add(state, "leader", 500)  # committed last: new commitments are served first come
    without = plan(state, models, 1_050, deps(budget=3), set())
    assert "leader" not in without.selected["tiny"]
    schedule = plan(state, models, 1_050, deps(budget=3), set(), chain_weights={"leader": 0.9})
    assert schedule.selected["tiny"][0] == "leader"


def test_only_counted_windows_are_scored_with_an_evidence_stride(state):
    a = add(state, "a", 100)
    window, schedule = plan_window(state, {"a": a}, 1_100, deps(evidence_stride=3), set(), {})
    assert window == 900 and schedule.selected["tiny"] == ("a",)  # 1050 // 150 = 7 does not count; 900 // 150 = 6 does
    assert plan_window(state, {"a": a}, 1_100, deps(), set(), {})[0] == 1_050


def test_the_local_chain_publishes_consensus_and_vtrust_from_the_weights_set(tmp_path):
    from subnet.chain.keys import create_wallet

    path = tmp_path / "chain.sqlite"
    with LocalChain(path, netuid=1) as admin:
        admin.set_weights_rate_limit(0)
        wallets = [create_wallet(tmp_path / "w", f"v{k}") for k in range(3)]
        for w in wallets:
            admin.register(w.hotkey.ss58_address, w.coldkeypub.ss58_address, stake=100.0, validator_permit=True)
        admin.register("miner-a", "c")
        admin.register("miner-b", "c")
    for k, w in enumerate(wallets):
        with LocalChain(path, netuid=1, wallet=w) as chain:
            assert chain.set_weights([3 if k < 2 else 4], [1.0], 0).success
    with LocalChain(path, netuid=1) as chain:
        graph = chain.metagraph()
    by_uid = {n.uid: n for n in graph.neurons}
    assert by_uid[3].consensus == pytest.approx(1.0) and by_uid[4].consensus == pytest.approx(0.0)
    assert by_uid[3].incentive == pytest.approx(1.0)
    assert [by_uid[u].validator_trust for u in (0, 1, 2)] == pytest.approx([1.0, 1.0, 0.0])
    assert graph.incentive_by_hotkey() == {"miner-a": pytest.approx(1.0)}


def test_agreement_is_the_vtrust_our_weights_get_against_the_chains_consensus():
    neurons = tuple(Neuron(u, f"h{u}", "c", 0.0, False, consensus=c) for u, c in ((3, 0.8), (4, 0.2)))
    graph = Metagraph(1, 100, neurons)
    report = assess_agreement(graph, [3, 4], [0.5, 0.5], windows_last_day=10, block=100)
    assert report.agreement == pytest.approx(0.7) and report.consensus_top_uid == 3 and not report.catching_up
    assert assess_agreement(graph, [4], [1.0], 2, 100).agreement == pytest.approx(0.2)
    assert assess_agreement(graph, [4], [1.0], 2, 100).catching_up
    empty = Metagraph(1, 100, tuple(Neuron(u, f"h{u}", "c", 0.0, False) for u in (3, 4)))
    assert assess_agreement(empty, [3], [1.0], 10, 100).agreement is None


def test_backfill_stops_at_the_start_of_the_schedule_entry_in_force(state):
    a, b = add(state, "a", 100), add(state, "b", 200)
    models = {m.hotkey: m for m in (a, b)}
    scored(state, 1_050, a, b)
    window, _ = plan_window(state, models, 1_100, deps(), set(), {}, earliest=1_000)
    assert window == 1_050  # window 900 belongs to the entry before the change at block 1000: not backfilled
    window, _ = plan_window(state, models, 1_100, deps(), set(), {}, earliest=900)
    assert window == 900


def test_a_superseded_commitments_windows_are_dropped_with_it(state):
    old = add(state, "a", 100)
    b = add(state, "b", 120)
    scored(state, 1_050, old, b)
    assert state.window_model_ids("tiny", 1_050) == {old.id, b.id}
    new = add(state, "a", 1_100)  # the miner committed another model: the old one never competes again
    assert new.id != old.id
    scored(state, 1_200, new)
    assert state.window_model_ids("tiny", 1_050) == {b.id}
