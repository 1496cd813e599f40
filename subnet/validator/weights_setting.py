"""Step 7 of a round: weights from the stored EMA onto the chain, at most one success per round.

Every outcome is recorded on the attempt with the chain's code. On a commit-reveal subnet a
success is a commit: its reveal round is recorded and shown ("committed, reveals at round R"),
never counted as weights the chain applied. An attempt whose outcome is unknown (a lost watch, a
timed-out write) is recorded as such and never resent in the same round.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

from subnet.chain.base import Chain, ChainError, Metagraph, WeightsResult
from subnet.validator import state as st
from subnet.validator.config import ValidatorConfig
from subnet.validator.context import RoundDeps
from subnet.data.sampling import seed_block
from subnet.validator.in_force import competitions_at, entry_at
from subnet.validator.state import ValidatorState
from subnet.validator.weighting import new_registrations, uid_weights, with_owner_share

log = logging.getLogger(__name__)

# Only a failure of the chain itself is retried within a round; a refusal of our weights (rate
# limit, arguments, permit, ...) or a mismatch with the runtime would fail the same way again.
RETRIED_CODES = frozenset({"connection", "unavailable", "chain_error"})
# The submission may have landed: recorded as unknown, never resent in this round.
UNKNOWN_OUTCOME_CODES = frozenset({"unknown_outcome", "timeout"})
# Failures of the chain (not refusals of our weights): counted in the chain-error metric.
CHAIN_FAILURE_CODES = RETRIED_CODES | UNKNOWN_OUTCOME_CODES | {"runtime_mismatch", "closed"}


def weights_due(chain: Chain, state: ValidatorState, block: int, config: ValidatorConfig) -> tuple[bool, str]:
    """Due when the interval has passed since the last success (or commit) at `block`, which must be
    the *current* block: a round's start block lags by the round's length, and with back-to-back
    rounds every other round would skip its weights."""
    last = state.last_weights_success_block()
    if last is None:
        return True, ""
    interval = max(config.weights_interval_blocks, chain.weights_rate_limit())
    if block - last < interval:
        return False, f"last weights at block {last}; next after block {last + interval}"
    return True, ""


def set_weights(
    deps: RoundDeps, round_id: int, uids: Sequence[int], weights: Sequence[float], block: int
) -> str:
    """At most one success per round: intent is stored before each call, the outcome after.

    Returns the round's final status (weights_set or done) after bounded retries.
    """
    cfg, state, chain = deps.config, deps.state, deps.chain
    if not uids or any(not math.isfinite(w) for w in weights) or sum(weights) <= 0:
        why = "weights are not finite" if any(not math.isfinite(w) for w in weights) else "weights are all zero"
        state.record_weights_skipped(round_id, block, uids, weights, why)
        deps.metrics.weight_attempts.labels(result="skipped").inc()
        log.warning("round %d: not setting weights: %s", round_id, why)
        return st.ROUND_DONE
    if not cfg.set_weights:
        log.info("round %d: --dont-set-weights: would set %s", round_id, dict(zip(uids, weights)))
        return st.ROUND_DONE
    try:
        block = chain.current_block()
    except ChainError as e:  # the due-check falls back to the round's block; the call below will tell
        log.warning("round %d: current block unavailable (%s: %s)", round_id, e.code, e)
    due, why = weights_due(chain, state, block, cfg)
    if not due:
        log.info("round %d: weights not due (%s)", round_id, why)
        return st.ROUND_DONE
    return _send_with_retries(deps, round_id, uids, weights, block)


def _send_with_retries(deps: RoundDeps, round_id: int, uids: Sequence[int], weights: Sequence[float],
                       block: int) -> str:
    """The calls themselves: intent stored before each, outcome after; retried only where it is safe."""
    for attempt in range(max(1, deps.config.weights_retries)):
        if deps.state.weights_sent(round_id):
            return st.ROUND_WEIGHTS_SET
        result, unknown = _attempt(deps, round_id, uids, weights, block)
        code = result.code
        if result.success:
            return st.ROUND_WEIGHTS_SET
        if code == "no_permit":
            log.error("round %d: the chain refused weights: this validator's hotkey has no validator permit "
                      "(too little stake, or not among the subnet's top validators); not retrying this round",
                      round_id)
            break
        log.warning("round %d: set_weights attempt %d failed (%s: %s)", round_id, attempt + 1, code, result.message)
        if unknown:
            break  # it may have landed: never resent in this round (and never reported as set)
        if code not in RETRIED_CODES or deps.stop.is_set():
            break
        deps.stop.wait(min(2.0**attempt, 10.0))
    return st.ROUND_DONE


def _attempt(deps: RoundDeps, round_id: int, uids: Sequence[int], weights: Sequence[float],
             block: int) -> tuple[WeightsResult, bool]:
    """One call to the chain, recorded before and after. Returns (result, outcome unknown)."""
    state = deps.state
    attempt_id = state.record_weights_intent(round_id, block, uids, weights)
    try:
        from subnet import VERSION_KEY

        result = deps.chain.set_weights(list(uids), list(weights), VERSION_KEY)
    except ChainError as e:
        result = WeightsResult(False, str(e), e.code, retry_after_s=e.retry_after_s)
    except Exception as e:  # noqa: BLE001 - never leave an intent dangling
        state.record_weights_outcome(attempt_id, False, f"{type(e).__name__}: {e}", code="error")
        deps.metrics.weight_attempts.labels(result="error").inc()
        raise
    code = result.code
    unknown = not result.success and code in UNKNOWN_OUTCOME_CODES
    state.record_weights_outcome(attempt_id, result.success, result.message or code, result.block, code=code,
                                 reveal_round=result.reveal_round, unknown=unknown)
    deps.metrics.weight_attempts.labels(result="success" if result.success else "unknown" if unknown else "failed").inc()
    if code in CHAIN_FAILURE_CODES:
        deps.metrics.chain_errors.inc()
    if result.success:
        deps.metrics.last_weights_set.set_to_current_time()
        log.info("round %d: weights %s at block %s on %d uid(s): %s", round_id,
                 "set" if result.reveal_round is None else f"committed (reveal at round {result.reveal_round})",
                 result.block, len(uids),
                 ", ".join(f"{u}={w:.4f}" for u, w in zip(uids, weights) if w > 0) or "none",
                 extra={"event": "weights", "round": round_id, "block": result.block,
                        "reveal_round": result.reveal_round,
                        "weights": {int(u): float(w) for u, w in zip(uids, weights)}})
    return result, unknown


def finish_weights(deps: RoundDeps, round_id: int, metagraph: Metagraph, block: int, window: int | None = None) -> str:
    """Set a scored round's weights from the stored EMA; also used to resume a round after a restart.

    On a resume the metagraph is newer than the EMA: hotkeys that re-registered (or moved uid) in
    between are left out, as the next round would leave them out. The schedule entry in force at
    `window` (default: `block`'s) gives the competitions' shares and the owner's share.
    """
    try:
        ema = deps.state.all_ema()
        recorded = deps.state.current_registrations()
        if recorded is not None:
            fresh = new_registrations({hk: r.uid for hk, r in recorded.items()},
                                      {n.hotkey: n.uid for n in metagraph.neurons})
            ema = {cid: {hk: w for hk, w in ws.items() if hk not in fresh} for cid, ws in ema.items()}
        at = seed_block(block, deps.config.seed_window_blocks) if window is None else window
        uids, weights = uid_weights(ema, metagraph, competitions_at(deps, at))
        uids, weights = with_owner_share(uids, weights, metagraph, entry_at(deps, at))
        status = set_weights(deps, round_id, uids, weights, block)
    except ChainError as e:
        deps.state.finish_round(round_id, st.ROUND_DONE, f"weights: {e.code}: {e}")
        raise
    deps.state.finish_round(round_id, status)
    return status
