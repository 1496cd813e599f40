"""Who this validator is and what it does next: the leaderboard page's header and `/status`.

The daemon records its identity (hotkey, uid, netuid, version, commit, cadence) in the state's meta
table at start-up, so `subnet scores --serve` over a copy of the state directory shows the same
header as the daemon's own API. Everything else is derived from the rounds and weight attempts.
"""

from __future__ import annotations

import time
from typing import Mapping

from subnet.validator.state import ValidatorState

IDENTITY_META = "validator_identity"
IDENTITY_KEYS = ("hotkey", "uid", "netuid", "network", "version", "commit", "round_interval_s",
                 "weights_interval_blocks")


def record_identity(state: ValidatorState, identity: Mapping) -> None:
    """Written once per start: a restarted validator (new version, new uid) replaces what was there."""
    state.set_meta(IDENTITY_META, {k: identity.get(k) for k in IDENTITY_KEYS})


def read_identity(state: ValidatorState) -> dict:
    """The recorded identity, every key present (None: not recorded, e.g. a state older than this)."""
    try:
        stored = state.get_meta(IDENTITY_META) or {}
    except Exception:  # noqa: BLE001 - the header must answer whatever the database does
        stored = {}
    return {k: stored.get(k) if isinstance(stored, dict) else None for k in IDENTITY_KEYS}


def operator_status(state: ValidatorState, now: float | None = None, served_by: Mapping | None = None) -> dict:
    """Identity, the last weights sent, and when the next round and the next weights are due.

    `served_by` is the version and commit of the process answering (it may differ from the validator's,
    e.g. `subnet scores --serve` of an older state).
    """
    now = time.time() if now is None else now
    identity = read_identity(state)
    return {"identity": identity, "served_by": dict(served_by or {}), "now": now,
            "last_weights": _last_weights(state, now), "next_round": _next_round(state, identity, now),
            "next_weights_block": _next_weights_block(state, identity)}


def _last_weights(state: ValidatorState, now: float) -> dict | None:
    from subnet.validator.state.weights import weights_status_text

    attempt = state.latest_weights_attempt()
    if attempt is None:
        return None
    return {"status": "committed" if attempt.committed else attempt.status, "block": attempt.block,
            "round_id": attempt.round_id, "at": attempt.created_at, "age_s": round(now - attempt.created_at, 1),
            "reveal_round": attempt.reveal_round, "text": weights_status_text(attempt)}


def _next_round(state: ValidatorState, identity: Mapping, now: float) -> dict:
    """A round in progress is named; otherwise the next is the last one's end plus the round interval."""
    rounds = state.rounds(limit=1)
    if not rounds:
        return {"in_progress": None, "at": None, "in_s": None}
    last = rounds[0]
    if last.finished_at is None:
        return {"in_progress": last.id, "at": None, "in_s": None}
    interval = identity.get("round_interval_s")
    if interval is None:
        return {"in_progress": None, "at": None, "in_s": None}
    at = float(last.finished_at) + float(interval)
    return {"in_progress": None, "at": at, "in_s": round(at - now, 1)}


def _next_weights_block(state: ValidatorState, identity: Mapping) -> int | None:
    """The earliest block this validator sets weights again (the chain's own rate limit may add to it)."""
    interval = identity.get("weights_interval_blocks")
    last = state.last_weights_success_block()
    return None if interval is None or last is None else int(last) + int(interval)


def identity_of(config, hotkey: str, uid: int | None) -> dict:
    """What the header shows of a running validator (`config` is its `ValidatorConfig`)."""
    from subnet import __version__, git_commit

    return {"hotkey": hotkey, "uid": uid, "netuid": config.netuid, "network": config.network,
            "version": __version__, "commit": git_commit(), "round_interval_s": config.round_interval_s,
            "weights_interval_blocks": config.weights_interval_blocks}
