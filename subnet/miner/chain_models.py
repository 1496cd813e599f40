"""Finding the model to beat on chain: the miner's view of the current incumbent.

Which model is "best" is the validators' verdict, and what the chain shows of it is who holds the
weight: each hotkey's share of the last epoch's incentive (`Chain.weight_holders`, Yuma consensus
over the validators' weights, on the real chain and the devnet alike). Among the competition's
valid commitments by registered hotkeys, the incumbent is the one the chain pays most; with several
competitions each has its own incumbent, because only that competition's commitments are ranked.
Commitments the chain pays nothing (before any epoch, or models nobody weights yet) come after,
newest first: the model most recently published is what a newcomer most likely has to beat.
Candidates are tried in that order; one that fails to download or verify is skipped with a
warning, so one broken repo does not hide the rest. Downloads go through `fetch_verified`, the
validator's own path, so the incumbent is exactly what validators score.
"""

from __future__ import annotations

import logging
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
    share: float = 0.0  # its share of the last epoch's incentive (0: the chain pays it nothing yet)

    def describe(self) -> str:
        held = (f"holds {self.share:.1%} of the subnet's incentive" if self.share > 0
                else "no validator weight on chain yet: the newest commitment")
        return f"{self.ref.short()} (uid {self.uid}, committed at block {self.block}; {held})"


@dataclass(frozen=True)
class _Candidate:
    commitment: Commitment
    ref: ModelRef
    uid: int | None
    standing: float  # the hotkey's share of the last epoch's incentive; 0 when unpaid


def ranked_candidates(chain: Chain, competition: Competition, exclude_hotkeys: set[str] | None = None) -> list[_Candidate]:
    """Valid commitments of `competition` by registered hotkeys, the weight holder first."""
    uids = {n.hotkey: n.uid for n in chain.metagraph().neurons}
    holders = chain.weight_holders()
    found: list[_Candidate] = []
    for c in chain.commitments():
        if c.hotkey not in uids or (exclude_hotkeys and c.hotkey in exclude_hotkeys):
            continue
        try:
            ref = ModelRef.parse(c.data)
        except ModelRefError:
            continue
        if ref.competition_id != competition.id:
            continue
        found.append(_Candidate(c, ref, uids[c.hotkey], holders.get(c.hotkey, 0.0)))
    return sorted(found, key=lambda x: (-x.standing, -x.commitment.block, x.commitment.hotkey))


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
        return ChainModel(path, cand.ref, cand.commitment.hotkey, cand.commitment.block, cand.uid, cand.standing)
    return None


def _fetch(store: ModelStore, cand: _Candidate, competition: Competition, cache_dir: Path) -> Path:
    from subnet.hub.download import fetch_verified

    return fetch_verified(store, cand.ref, cand.commitment.hotkey, competition, cache_dir)


def commitment_of(chain: Chain, hotkey: str) -> Commitment | None:
    """This hotkey's current commitment, or None."""
    return next((c for c in chain.commitments() if c.hotkey == hotkey), None)
