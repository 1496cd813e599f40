"""The data behind the leaderboard page: loss series per model over rounds, and differences from the leader.

Read-only over the state, so the page shows the same thing whether the daemon serves it or
`subnet scores --serve` does from a copy of its state directory.
"""

from __future__ import annotations

import math
from importlib import resources

import numpy as np

from subnet.eval.types import DocLosses
from subnet.hub.model_ref import display_ref
from subnet.scoring.loss import competition_loss, document_nll, paired_log_ratio
from subnet.validator.score_table import current_uids
from subnet.validator.state import ValidatorState

PAGE_RESOURCE = "leaderboard.html"
SCRIPT_RESOURCES = ("leaderboard_charts.js", "leaderboard.js")
SCRIPT_SLOT = b"<script>/* leaderboard_charts.js and leaderboard.js, inlined by page_html() */</script>"


def page_html() -> bytes:
    """The self-contained page (inline CSS and JS, no CDN), shipped as package data.

    The scripts are kept in their own files (each small enough to read) and inlined here, so the
    page still loads nothing but its own JSON endpoints.
    """
    assets = resources.files("subnet").joinpath("assets")
    page = assets.joinpath(PAGE_RESOURCE).read_bytes()
    script = b'"use strict";\n' + b"\n".join(assets.joinpath(name).read_bytes() for name in SCRIPT_RESOURCES)
    if SCRIPT_SLOT not in page:
        raise RuntimeError(f"{PAGE_RESOURCE} lost its script slot")
    return page.replace(SCRIPT_SLOT, b"<script>\n" + script + b"</script>")


def _num(x) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def loss_history(state: ValidatorState, competition: str | None = None, last_rounds: int = 200) -> dict:
    """One series per model (a hotkey's commitment), so a new model never looks like the old one improving.

    Each point is [round id, block, mean, low, high] of the model's loss in that round. A copy names
    the hotkey it copied and that hotkey's uid (`copy_of_uid`), so the page can say "copy of uid 3".
    """
    rows = state.result_history(competition, last_rounds)
    blocks = state.round_blocks({r[0] for r in rows})
    series: dict[tuple[str, int | None], dict] = {}
    for round_id, comp, hotkey, uid, model_id, mean, low, high, copy_of in rows:
        s = series.get((comp, model_id))
        if s is None:
            s = series[(comp, model_id)] = {
                "id": f"{comp}:{model_id}", "competition": comp, "hotkey": hotkey, "uid": uid,
                "model_id": model_id, "model": "", "copy_of": None, "copy_of_uid": None, "points": [],
            }
        s["uid"] = uid
        if copy_of:
            s["copy_of"] = copy_of
        mean = _num(mean)
        if mean is None:
            continue
        low, high = _num(low), _num(high)
        # Five decimals: far below any interval's width, and a third of the bytes of repr().
        s["points"].append([round_id, blocks.get(round_id), round(mean, 5), round(mean if low is None else low, 5),
                            round(mean if high is None else high, 5)])
    refs = state.model_refs(s["model_id"] for s in series.values())
    uids = _uids(state, series.values())
    for s in series.values():
        s["model"] = display_ref(refs.get(s["model_id"]))
        s["copy_of_uid"] = uids.get(s["copy_of"]) if s["copy_of"] else None
    return {"rounds": [{"id": k, "block": v} for k, v in sorted(blocks.items())], "series": list(series.values())}


def _uids(state: ValidatorState, series) -> dict[str, int]:
    """The uid each copied hotkey is known by: its current registration, else the uid of its newest series."""
    uids = {s["hotkey"]: s["uid"] for s in series if s["uid"] is not None}
    return {**uids, **current_uids(state)}


def leader_differences(state: ValidatorState, competition: str, confidence: float = 0.95) -> dict:
    """Each model's paired loss difference from the weight holder, on their newest shared round.

    On the competition's one loss (total NLL over total tokens, `subnet.scoring.loss`): `diff` is
    L_model - L_leader in nats per token, its interval the delta-method interval of the paired ratio
    scaled by the leader's loss, `relative` is L_model / L_leader - 1. Negative means better than the
    leader. The leader is the hotkey holding the most smoothed weight.
    """
    ema = state.ema(competition)
    if not ema:
        return {"competition": competition, "leader": None, "round_id": None, "differences": []}
    leader = max(sorted(ema), key=lambda hk: ema[hk])
    round_id = state.latest_result_round(competition, leader)
    if round_id is None:
        return {"competition": competition, "leader": leader, "round_id": None, "differences": []}
    blobs = state.result_losses(round_id, competition)
    if leader not in blobs:
        return {"competition": competition, "leader": leader, "round_id": round_id, "differences": []}
    leader_losses = DocLosses.from_bytes(blobs[leader])
    base, tokens = document_nll(leader_losses), leader_losses.n_tokens
    out = []
    for hotkey, blob in sorted(blobs.items()):
        if hotkey == leader:
            continue
        other = document_nll(DocLosses.from_bytes(blob))
        if other.shape != base.shape:
            continue
        stat = paired_log_ratio(base, other, tokens)
        shared = np.where(np.isfinite(other), base, np.nan)
        scale = competition_loss(shared, tokens).mean  # the leader's loss on the documents both scored
        low, high = stat.relative_interval(confidence)
        relative = math.expm1(stat.log_ratio) if math.isfinite(stat.log_ratio) else None
        out.append({"hotkey": hotkey, "diff": _num(None if relative is None else scale * relative),
                    "ci_low": _num(scale * low) if stat.n >= 2 else None,
                    "ci_high": _num(scale * high) if stat.n >= 2 else None, "n": stat.n,
                    "relative": _num(relative)})
    out.sort(key=lambda d: (d["diff"] is None, d["diff"] if d["diff"] is not None else 0.0))
    return {"competition": competition, "leader": leader, "round_id": round_id, "differences": out}
