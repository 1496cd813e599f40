"""Steps 1-2 of a round: one bulk chain read, commitments parsed and recorded per hotkey."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from subnet.chain.base import Chain, Commitment, Metagraph
from subnet.competitions import Competition
from subnet.hub.model_ref import ModelRef, ModelRefError
from subnet.validator.state import ModelRecord, ValidatorState


@dataclass(frozen=True)
class ChainSnapshot:
    block: int
    metagraph: Metagraph
    commitments: tuple[Commitment, ...]


@dataclass(frozen=True)
class ParsedCommitment:
    hotkey: str
    uid: int
    block: int
    data: str
    ref: ModelRef | None
    error: str | None



def read_chain(chain: Chain) -> ChainSnapshot:
    """One metagraph read and one bulk commitments read; the block is the metagraph's."""
    metagraph = chain.metagraph()
    commitments = tuple(chain.commitments())
    return ChainSnapshot(block=int(metagraph.block), metagraph=metagraph, commitments=commitments)


def parse_commitments(snapshot: ChainSnapshot, known: Mapping[str, Competition]) -> list[ParsedCommitment]:
    """Commitments of registered hotkeys, parsed; an unparsable one keeps its reason."""
    uids = {n.hotkey: n.uid for n in snapshot.metagraph.neurons}
    parsed = []
    for c in sorted(snapshot.commitments, key=lambda c: (c.block, c.hotkey)):
        if c.hotkey not in uids:
            continue
        try:
            ref, error = ModelRef.parse(c.data, known), None
        except ModelRefError as e:
            ref, error = None, str(e)
        parsed.append(ParsedCommitment(c.hotkey, uids[c.hotkey], c.block, c.data, ref, error))
    return parsed


def record_commitments(state: ValidatorState, parsed: Sequence[ParsedCommitment]) -> dict[str, ModelRecord]:
    """Store every sighting; returns each hotkey's current model record."""
    current = {}
    for p in parsed:
        competition = p.ref.competition_id if p.ref else None
        current[p.hotkey] = state.upsert_commitment(p.hotkey, p.uid, p.data, p.block, competition, p.error)
    return current
