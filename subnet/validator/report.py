"""What a round says in the log: one summary line per competition, one line per model.

Every line stands alone (uid, hotkey, model ref, numbers), so `grep uid=7` over weeks of logs tells
one miner's story; with `--log-format json` the same facts are fields of the line's object.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

from subnet.hub.model_ref import display_ref as short_ref  # one display form of a commitment everywhere
from subnet.validator import state as st
from subnet.validator.context import RoundSummary
from subnet.validator.state import ValidatorState

log = logging.getLogger("subnet.validator.round")

_WEIGHTS_TEXT = {st.ROUND_WEIGHTS_SET: "weights set", st.ROUND_DONE: "weights not set this round"}


def round_reporter(state: ValidatorState) -> Callable[[RoundSummary], None]:
    """A daemon `on_round` callback that logs a finished round with uids and model refs from the state."""

    def report(summary: RoundSummary) -> None:
        latest = {m.hotkey: m for m in state.models()}  # ordered by id: the newest commitment wins
        registered = {hk: r.uid for hk, r in (state.current_registrations() or {}).items()}
        for line, level, fields in round_lines(summary, latest, registered):
            log.log(level, line, extra=fields)

    return report


def round_lines(summary: RoundSummary, models: dict, uids: dict[str, int]) -> list[tuple[str, int, dict]]:
    lines: list[tuple[str, int, dict]] = []
    weights = _WEIGHTS_TEXT.get(summary.weights_status, summary.weights_status)
    for cid, o in summary.competitions.items():
        lines.append((
            f"round {summary.round_id} {cid}: block {summary.block}, {o.scored} scored, {len(o.failed)} failed, "
            f"{len(o.copies)} copies, {o.n_docs} docs, {summary.seconds:.1f} s, {o.tokens_per_s:,.0f} tok/s, {weights}"
            + (f", {len(o.own_faults)} not judged (our fault)" if o.own_faults else "")
            + (f", weights held ({o.weights_held})" if o.weights_held else ""),
            logging.WARNING if o.weights_held else logging.INFO,
            {"event": "round", "round": summary.round_id, "competition": cid, "block": summary.block,
             "scored": o.scored, "failed": len(o.failed), "copies": len(o.copies), "docs": o.n_docs,
             "seconds": round(summary.seconds, 3), "weights": summary.weights_status,
             "own_faults": len(o.own_faults), "weights_held": o.weights_held},
        ))
        keys = sorted(set(o.win_rates) | set(o.failed) | set(o.mean_loss) | set(o.own_faults),
                      key=lambda k: -o.ema.get(k, 0.0))
        for key in keys:
            record = models.get(key)
            uid, ref = uids.get(key, record.uid if record else None), short_ref(record.ref) if record else "?"
            fields = {"event": "model", "round": summary.round_id, "competition": cid, "uid": uid, "hotkey": key,
                      "ref": ref}
            if key in o.failed:
                fields["reason"] = o.failed[key]
                lines.append((f"round {summary.round_id} {cid}: uid {uid} {key} {ref} failed: {o.failed[key]}",
                              logging.WARNING, fields))
                continue
            if key in o.own_faults:
                fields["reason"] = o.own_faults[key]
                lines.append((f"round {summary.round_id} {cid}: uid {uid} {key} {ref} not judged, our fault: "
                              f"{o.own_faults[key]}", logging.WARNING, fields))
                continue
            loss, rate, weight = o.mean_loss.get(key), o.win_rates.get(key), o.ema.get(key, 0.0)
            copy = f", copy of uid {uids.get(o.copies[key], '?')}" if key in o.copies else ""
            fields.update(loss=loss, win_rate=rate if rate is not None and math.isfinite(rate) else None,
                          weight=weight, copy_of=o.copies.get(key))
            lines.append((
                f"round {summary.round_id} {cid}: uid {uid} {key} {ref} loss "
                f"{'-' if loss is None else f'{loss:.4f}'} win rate "
                f"{'-' if rate is None or not math.isfinite(rate) else f'{rate:.2f}'} weight {weight:.3f}{copy}",
                logging.INFO, fields))
    malformed = [m for hk, m in models.items() if m.parse_error and hk in uids]
    for m in malformed:
        lines.append((f"round {summary.round_id}: uid {uids[m.hotkey]} {m.hotkey} malformed commitment "
                      f"{m.ref[:80]!r}: {m.parse_error}", logging.INFO,
                      {"event": "malformed", "round": summary.round_id, "uid": uids[m.hotkey], "hotkey": m.hotkey,
                       "reason": m.parse_error}))
    return lines
