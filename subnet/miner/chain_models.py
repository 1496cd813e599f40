"""Finding the model to beat on chain: the miner's view of the current incumbent.

Which model is "best" is the validators' verdict, and what the chain shows of it is each
neuron's incentive. The shared `Chain` protocol does not expose incentives today, so the choice is:
1. if the metagraph's neurons carry a numeric `incentive` (a richer adapter may add it), the
   registered hotkey with the highest incentive;
2. else, if the chain adapter can read validators' weights (`weights_of(hotkey)`, as LocalChain
   does), the uid with the highest stake-weighted weight from validators with a permit;
3. otherwise (and to break ties) the latest valid commitment of the competition: the model most
   recently published, which is what a newcomer most likely has to beat.
Candidates are tried in that order; one that fails to download or verify is skipped with a
warning, so one broken repo does not hide the rest. Downloads go through `fetch_verified`, the
validator's own path, so the incumbent is exactly what validators score.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from subnet.chain.base import Chain, Commitment
from subnet.competitions import Competition
from subnet.hub.errors import ModelRejected
from subnet.hub.model_ref import ModelRef, ModelRefError
from subnet.hub.store import ModelStore, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChainModel:
    path: Path  # verified local copy
    ref: ModelRef
    hotkey: str
    block: int  # commitment block: the model's birth
    uid: int | None = None


@dataclass(frozen=True)
class _Candidate:
    commitment: Commitment
    ref: ModelRef
    uid: int | None
    standing: float  # incentive or stake-weighted validator weight; 0 when unknown


def ranked_candidates(chain: Chain, competition: Competition, exclude_hotkeys: set[str] | None = None) -> list[_Candidate]:
    """Valid commitments of `competition` by registered hotkeys, most likely incumbent first."""
    metagraph = chain.metagraph()
    neurons = {n.hotkey: n for n in metagraph.neurons}
    standing = chain_standing(chain, metagraph)
    found: list[_Candidate] = []
    for c in chain.commitments():
        if c.hotkey not in neurons or (exclude_hotkeys and c.hotkey in exclude_hotkeys):
            continue
        try:
            ref = ModelRef.parse(c.data)
        except ModelRefError:
            continue
        if ref.competition_id != competition.id:
            continue
        uid = neurons[c.hotkey].uid
        found.append(_Candidate(c, ref, uid, standing.get(uid, 0.0)))
    return sorted(found, key=lambda x: (-x.standing, -x.commitment.block, x.commitment.hotkey))


def chain_standing(chain: Chain, metagraph) -> dict[int, float]:
    """uid -> how much the validators favour it: incentive if exposed, else stake-weighted weights."""
    incentives = {n.uid: getattr(n, "incentive", None) for n in metagraph.neurons}
    if any(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in incentives.values()):
        return {uid: float(v) for uid, v in incentives.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    weights_of = getattr(chain, "weights_of", None)
    if not callable(weights_of):
        return {}
    standing: dict[int, float] = {}
    for n in metagraph.neurons:
        if not n.validator_permit:
            continue
        stake = n.stake if n.stake > 0 else 1.0
        for uid, w in weights_of(n.hotkey).items():
            if math.isfinite(w):
                standing[uid] = standing.get(uid, 0.0) + stake * w
    return standing


def best_model_on_chain(
    chain: Chain, store: ModelStore, competition: Competition, cache_dir: Path, *, exclude_hotkeys: set[str] | None = None
) -> ChainModel | None:
    """Download (verified) the competition's current best model on chain; None when there is none."""
    for cand in ranked_candidates(chain, competition, exclude_hotkeys):
        try:
            path = _fetch(store, cand, competition, Path(cache_dir))
        except (ModelRejected, StoreError) as e:
            log.warning("skipping %s (uid %s): %s", cand.ref.short(), cand.uid, e)
            continue
        return ChainModel(path, cand.ref, cand.commitment.hotkey, cand.commitment.block, cand.uid)
    return None


def _fetch(store: ModelStore, cand: _Candidate, competition: Competition, cache_dir: Path) -> Path:
    from subnet.hub.download import fetch_verified

    return fetch_verified(store, cand.ref, cand.commitment.hotkey, competition, cache_dir)


def commitment_of(chain: Chain, hotkey: str) -> Commitment | None:
    """This hotkey's current commitment, or None."""
    return next((c for c in chain.commitments() if c.hotkey == hotkey), None)
