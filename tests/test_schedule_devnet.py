"""Issue 27 end to end on the local chain: two validators run across a scheduled change.

Before the change block one competition ('tiny') takes all the weight; from the change on two
competitions split it 0.6/0.4 after an owner share of 0.2. Both validators switch at the same
window, set the same weights, and the model committed to the retired 'tiny' gets no weight and
a reason naming the block. Daemon level (run_round with the local chain), not `subnet devnet`:
the CLI devnet would train and publish through subprocesses, minutes on this machine.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest


from subnet.schedule import CompetitionSchedule, ScheduleEntry  # noqa: E402
from subnet.validator import state as st  # noqa: E402
from subnet.validator.config import ValidatorConfig  # noqa: E402
from subnet.validator.daemon import source_factory  # noqa: E402
from subnet.validator.metrics import ValidatorMetrics  # noqa: E402
from subnet.validator.round import RoundDeps, inprocess_scorer, run_round  # noqa: E402
from subnet.validator.score_table import scores_table  # noqa: E402
from subnet.validator.state import ValidatorState  # noqa: E402
from tests.validator_fixtures import E2E_COMPETITION, LocalSubnet, train_snapshots  # noqa: E402

pytestmark = pytest.mark.slow
WINDOW, MARGIN = 10, 2


def _schedule(change: int, owner_uid: int) -> CompetitionSchedule:
    return CompetitionSchedule((
        ScheduleEntry(0, {"tiny": E2E_COMPETITION}),
        ScheduleEntry(change, {"small": replace(E2E_COMPETITION, id="small", reward_share=0.6),
                               "tiny2": replace(E2E_COMPETITION, id="tiny2", reward_share=0.4)},
                      owner=f"uid:{owner_uid}", owner_share=0.2),
    ))


def _validator(root: Path, subnet: LocalSubnet, wallet, schedule: CompetitionSchedule) -> RoundDeps:
    from subnet.chain.local import LocalChain

    config = ValidatorConfig(
        network=subnet.network, netuid=subnet.netuid, state_dir=root, store=f"local:{subnet.store.root}",
        api_port=0, round_interval_s=0.0, scoring_mode="inprocess", seed_window_blocks=WINDOW,
        eligibility_margin_blocks=MARGIN, weights_interval_blocks=1, min_free_disk_bytes=0, device="cpu",
        backfill_windows=0,
    )
    known = schedule.all_competitions()
    return RoundDeps(
        chain=LocalChain(subnet.chain_path, subnet.netuid, wallet=wallet, block_time=subnet.block_time),
        store=subnet.store, state=ValidatorState(config.db_path), config=config, competitions=known,
        known_competitions=known, source_for=source_factory(config), scorer=inprocess_scorer("cpu"),
        metrics=ValidatorMetrics(), schedule=schedule,
    )


def _last_weights(deps: RoundDeps) -> dict[int, float]:
    done = [a for a in deps.state.weight_attempts() if a.status == st.ATTEMPT_SUCCESS]
    assert done, deps.state.weight_attempts()
    return dict(zip(done[-1].uids, done[-1].weights))


def test_two_validators_switch_at_the_scheduled_block(tmp_path):
    from subnet.chain.keys import create_wallet

    trained = train_snapshots(tmp_path / "models", {"weak": 0, "strong": 40})
    subnet = LocalSubnet(tmp_path / "subnet", block_time=5.0)  # blocks move by `advance`, not by the clock
    second = create_wallet(subnet.wallet_path, "validator2", "default")
    subnet.chain.register(second.hotkey.ss58_address, second.coldkeypub.ss58_address, stake=1000.0,
                          validator_permit=True)
    owner = subnet.add_miner("owner")
    old = subnet.publish("old", trained["strong"])  # committed to 'tiny', retired at the change
    change = (subnet.chain.current_block() // WINDOW + 6) * WINDOW
    schedule = _schedule(change, owner.uid)
    validators = [_validator(tmp_path / "v1", subnet, subnet.validator_wallet, schedule),
                  _validator(tmp_path / "v2", subnet, second, schedule)]

    subnet.advance_to(old.block + WINDOW + MARGIN)
    before = [run_round(v) for v in validators]
    assert all(s.window < change for s in before), [s.window for s in before]
    for v in validators:
        assert _last_weights(v) == pytest.approx({old.uid: 1.0})

    a = subnet.publish("a", trained["strong"], "small")  # not yet open: waits, pending
    b = subnet.publish("b", trained["weak"], "tiny2")
    assert b.block < change - MARGIN
    subnet.advance_to(change + 1)
    after = [run_round(v) for v in validators]
    assert [s.window for s in after] == [change, change]  # both switch at the same round
    expected = {owner.uid: 0.2, a.uid: 0.8 * 0.6, b.uid: 0.8 * 0.4}
    for v in validators:
        assert _last_weights(v) == pytest.approx(expected)
        rows = {r["hotkey"]: r for r in scores_table(v.state, "tiny", competitions=schedule.all_competitions())}
        assert rows[old.hotkey]["weight"] == 0.0 and rows[old.hotkey]["status"] == st.MODEL_FAILED
        assert f"retired since block {change}" in rows[old.hotkey]["reason"]
        v.state.close()
        v.chain.close()
    subnet.close()
