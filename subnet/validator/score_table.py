"""The scores table: one row per current commitment, as `/scores` and `subnet scores` show it.

Built only from the validator's state, so it answers the same whether the daemon is running,
stopped, or being inspected from another process.

Hotkeys that have left the metagraph (as of the latest recorded round) are left out by default:
the table is the current field, and over months of churn the departed would outnumber it. Asked
for (`include_deregistered=True`, `/scores?deregistered=1`), they appear last with status
'deregistered', weight 0, no uid (the uid may belong to someone else now) and a reason naming the
uid and block they were last seen at. Their last results stay, for the record.
"""

from __future__ import annotations

import math
from typing import Mapping

from subnet.competitions import DEFAULT_COMPETITIONS, Competition
from subnet.hub.model_ref import display_ref
from subnet.validator.state import (
    MODEL_VERIFIED,
    EarnedRecord,
    ModelRecord,
    Registration,
    ValidatorState,
)

DEREGISTERED = "deregistered"

COLUMNS = ("uid", "hotkey", "model", "competition", "block", "age_blocks", "advantage", "advantage_source",
           "round", "mean_loss", "ci_low", "ci_high", "win_rate", "weight", "status", "reason")
EVIDENCE_COLUMNS = ("competition", "earlier", "later", "earlier_uid", "later_uid", "earlier_model", "later_model",
                    "rounds", "diff", "acc_low", "acc_high", "eps", "later_wins", "round_id")


def current_models(state: ValidatorState) -> list[ModelRecord]:
    """Each hotkey's newest commitment (a miner's earlier ones no longer compete)."""
    newest: dict[str, ModelRecord] = {}
    for m in state.models():
        held = newest.get(m.hotkey)
        if held is None or (m.block, m.id) > (held.block, held.id):
            newest[m.hotkey] = m
    return list(newest.values())


def scores_table(
    state: ValidatorState,
    competition: str | None = None,
    current_block: int | None = None,
    competitions: Mapping[str, Competition] | None = None,
    include_deregistered: bool = False,
) -> list[dict]:
    """Rows with the keys in `COLUMNS`, sorted by competition, then weight (highest first), then uid.

    With `competition` given, only that competition's rows; unparsable commitments appear only without it.

    `current_block` defaults to the block of the latest round; ages and advantages use it.
    Hotkeys no longer registered appear only with `include_deregistered` (see the module docstring);
    a state that never recorded registrations (older than migration 3) counts everyone as registered.
    """
    table = DEFAULT_COMPETITIONS if competitions is None else competitions
    if current_block is None:
        rounds = state.rounds(limit=1)
        current_block = rounds[0].block if rounds else None
    latest = state.latest_results(competition)
    earned = state.earned_advantages()
    ema = state.all_ema()
    registered = state.current_registrations()
    rows = []
    uids = current_uids(state, registered)
    for m in current_models(state):
        if competition is not None and m.competition != competition:
            continue
        registration = None if registered is None else registered.get(m.hotkey)
        departed = registered is not None and registration is None
        if departed and not include_deregistered:
            continue
        result = latest.get((m.competition or "", m.hotkey))
        row_result = result[1] if result and result[1].model_id == m.id else None
        age = None if current_block is None else max(0, current_block - m.block)
        rows.append({
            "uid": None if departed else (registration.uid if registration else m.uid),
            "hotkey": m.hotkey,
            "model": display_ref(m.ref),
            "competition": m.competition,
            "block": m.block,
            "age_blocks": age,
            **_advantage(age, table.get(m.competition or ""), earned.get(m.id)),
            # The round whose documents gave the loss: rows of one table may come from different rounds
            # (a backfill round re-scores only the models in play), so equal models can show unequal losses.
            "round": result[0] if row_result else None,
            "mean_loss": _num(row_result.mean_loss) if row_result else None,
            "ci_low": _num(row_result.ci_low) if row_result else None,
            "ci_high": _num(row_result.ci_high) if row_result else None,
            "win_rate": _num(row_result.win_rate) if row_result else None,
            "weight": 0.0 if departed else ema.get(m.competition or "", {}).get(m.hotkey, 0.0),
            **(_departed(state, m) if departed else _status(m, row_result, uids)),
        })
    # Unparsable commitments (no competition) go last.
    rows.sort(key=lambda r: (r["competition"] is None, r["competition"] or "", -r["weight"],
                             r["uid"] if r["uid"] is not None else 1 << 30))
    return rows


def current_uids(state: ValidatorState, registered: Mapping[str, Registration] | None = None) -> dict[str, int]:
    """Each current hotkey's uid: as last registered, else as committed (a state without registrations)."""
    registered = state.current_registrations() if registered is None else registered
    uids = {m.hotkey: m.uid for m in current_models(state) if m.uid is not None}
    if registered is not None:
        uids = {hk: reg.uid for hk, reg in registered.items()}
    return uids


def copy_text(original: str, uids: Mapping[str, int]) -> str:
    """ "copy of uid 3 (5F3sa2TJ)": the uid an operator finds in every table, and the hotkey's start."""
    uid = uids.get(original)
    return f"copy of uid {uid} ({original[:8]})" if uid is not None else f"copy of {original[:8]} (not registered)"


def _status(m: ModelRecord, result, uids: Mapping[str, int]) -> dict:
    if m.status != MODEL_VERIFIED:
        return {"status": m.status, "reason": m.reason or m.parse_error}
    if result is None:
        return {"status": "verified", "reason": None}
    if result.copy_of:
        return {"status": "copy", "reason": copy_text(result.copy_of, uids)}
    if result.error:
        return {"status": "error", "reason": result.error}
    return {"status": "scored", "reason": None}


def _departed(state: ValidatorState, m: ModelRecord) -> dict:
    stints: list[Registration] = state.registrations(m.hotkey)
    if not stints:
        return {"status": DEREGISTERED, "reason": "not registered when registrations were recorded"}
    last = max(stints, key=lambda r: r.last_round)
    return {"status": DEREGISTERED, "reason": f"last seen registered at block {last.last_block}, as uid {last.uid}"}


def _advantage(age: int | None, competition: Competition | None, earned: EarnedRecord | None) -> dict:
    """The advantage the model holds now as an earlier model, and where it comes from (issue 20)."""
    if competition is None:
        return {"advantage": None, "advantage_source": None}
    from subnet.scoring.earned import EarnedAdvantage, model_advantage

    schedule = competition.advantage
    held = None if earned is None else EarnedAdvantage(
        earned.hotkey, earned.eps, earned.leader, earned.improvement_low, earned.improvement_high, earned.rounds,
        earned.by_failures)
    if earned is None:
        source = "eps0, decaying with age" + (" (nothing earned yet)" if schedule.mode == "earned" else "")
    else:
        shown = ("won on the leader's failed documents" if earned.by_failures
                 else f"beat {earned.leader} by at least {earned.improvement_low:.3%} over {earned.rounds} round(s)")
        used = "" if schedule.mode == "earned" else "; not used: this competition's advantage mode is 'age'"
        source = f"earned {earned.eps:.3%} in round {earned.round_id}: {shown}{used}"
    value = None if age is None else float(model_advantage(float(age), schedule, held))
    return {"advantage": value, "advantage_source": source}


def evidence_table(state: ValidatorState, competition: str | None = None) -> list[dict]:
    """Each pair of current models with its evidence accumulated across rounds (keys in `EVIDENCE_COLUMNS`).

    Each side is named by hotkey, uid and model (short ref): a hotkey that commits a new model starts
    new pairs, and the row says which model it is about.

    `diff` is the pooled L_later / L_earlier - 1 and [acc_low, acc_high] its confidence sequence
    (valid over all rounds at once); `eps` is the earlier model's advantage at the latest verdict.
    """
    current = {m.id: m for m in current_models(state)}
    uids = current_uids(state)
    rows = []
    for (earlier_id, later_id), e in state.pair_evidence(competition).items():
        if earlier_id not in current or later_id not in current:
            continue
        estimate = e.weighted_sum / e.information if e.information > 0 else None
        rows.append({
            "competition": e.competition, "earlier": e.earlier, "later": e.later,
            "earlier_uid": uids.get(e.earlier), "later_uid": uids.get(e.later),
            "earlier_model": display_ref(current[earlier_id].ref), "later_model": display_ref(current[later_id].ref),
            "rounds": e.rounds,
            "diff": None if estimate is None else math.expm1(estimate),
            "acc_low": _num(e.acc_low), "acc_high": _num(e.acc_high), "eps": _num(e.eps),
            "later_wins": e.later_wins, "round_id": e.round_id,
        })
    rows.sort(key=lambda r: (r["competition"], r["earlier"], r["later"]))
    return rows


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def weights_summary(state: ValidatorState) -> dict:
    """What this validator last sent to the chain. On a commit-reveal subnet that is a commit, shown as
    "committed, reveals at round R" and never as weights set: the chain applies it only at R."""
    from subnet.validator.state.weights import weights_status_text

    attempt = state.latest_weights_attempt()
    return {
        "status": None if attempt is None else ("committed" if attempt.committed else attempt.status),
        "round_id": None if attempt is None else attempt.round_id,
        "block": None if attempt is None else attempt.block,
        "reveal_round": None if attempt is None else attempt.reveal_round,
        "text": weights_status_text(attempt),
    }

