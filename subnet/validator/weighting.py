"""From per-document losses to weights: the pure decisions of a round.

Pairwise wins on the same documents (with the earlier model's advantage), then win rates to
weights, smoothed with the stored EMA, then hotkeys to the uids of the current metagraph with
each competition's reward share. No I/O here: each function maps plain values to plain values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

import numpy as np

from subnet.chain.base import Metagraph
from subnet.competitions import Competition
from subnet.eval.types import ScoreOutcome
from subnet.validator.config import ValidatorConfig
from subnet.validator.state import EarnedRecord, EvidenceRecord, ModelRecord, ResultRow, VerdictRow

if TYPE_CHECKING:
    from subnet.validator.context import ReadyModel


@dataclass(frozen=True)
class Judgement:
    results: list[ResultRow]
    verdicts: list[VerdictRow]
    win_rates: dict[str, float]
    copies: dict[str, str]
    failed: dict[str, str]
    evidence: list[EvidenceRecord] = field(default_factory=list)  # every compared pair's pooled evidence
    earned: list[EarnedRecord] = field(default_factory=list)  # advantages first earned this round


def judge(
    competition: Competition,
    models: Mapping[str, ModelRecord],
    ready: Mapping[str, ReadyModel],
    fetch_failed: Mapping[str, str],
    outcomes: Mapping[str, ScoreOutcome],
    n_docs: int,
    current_block: int,
    confidence: float,
    *,
    groups=None,
    evidence: Mapping[tuple[int, int], EvidenceRecord] | None = None,
    earned: Mapping[int, EarnedRecord] | None = None,
    previous_weights: Mapping[str, float] | None = None,
) -> Judgement:
    """Paired comparisons on the same documents; a model that could not be scored loses to everyone.

    `groups` gives each document's source index (multi-source competitions); `evidence` and
    `earned` are what the state holds from earlier rounds (keyed by model id), and
    `previous_weights` the stored EMA that says who leads.
    """
    from subnet.scoring.earned import EarnedAdvantage, advantages_now, leader_of, newly_earned
    from subnet.scoring.loss import competition_loss, document_nll
    from subnet.scoring.sequential import PairEvidence
    from subnet.scoring.wins import Candidate, compute_wins

    nan = np.full(n_docs, np.nan)
    candidates, nll, tokens = [], {}, None
    for key in sorted(set(ready) | set(fetch_failed)):
        outcome = outcomes.get(key)
        scored = outcome is not None and outcome.losses is not None
        nll[key] = document_nll(outcome.losses) if scored else nan
        if scored and tokens is None:
            tokens = np.asarray(outcome.losses.n_tokens, dtype=np.float64)
        content_hash = ready[key].content_hash if key in ready else None
        candidates.append(Candidate(key=key, block=models[key].block, losses=nll[key], content_hash=content_hash))
    weights = [s.weight for s in competition.weighted_sources]
    ids = {key: models[key].id for key in nll}
    prior = {
        (ek, lk): PairEvidence(e.weighted_sum, e.information, e.rounds, e.rho)
        for ek in nll for lk in nll
        if (e := (evidence or {}).get((ids[ek], ids[lk]))) is not None
    }
    held = {key: (earned or {}).get(ids[key]) for key in nll}
    held_adv = {k: EarnedAdvantage(k, r.eps, r.leader, r.improvement_low, r.improvement_high, r.rounds, r.by_failures)
                for k, r in held.items() if r is not None}
    schedule = competition.advantage
    advantages = None
    if schedule.mode == "earned":
        advantages = advantages_now({k: models[k].block for k in nll}, held_adv, current_block, schedule)
    wins = compute_wins(candidates, current_block, schedule, confidence=confidence, tokens=tokens, groups=groups,
                        group_weights=weights, evidence=prior, advantages=advantages,
                        design_rounds=competition.design_rounds)
    results = []
    for key in sorted(nll):
        outcome = outcomes.get(key)
        error = fetch_failed.get(key) or (outcome.error if outcome else "not_scored") or wins.failed.get(key, "")
        finite = int(np.isfinite(nll[key]).sum())
        interval = competition_loss(nll[key], tokens, groups, weights, confidence) if finite else None
        results.append(ResultRow(
            competition=competition.id, hotkey=key, uid=models[key].uid, model_id=models[key].id,
            mean_loss=interval.mean if interval else None,
            ci_low=interval.low if interval else None, ci_high=interval.high if interval else None,
            n_docs=finite, tokens_per_s=outcome.tokens_per_s if outcome else 0.0,
            seconds=outcome.seconds if outcome else 0.0, error=error,
            win_rate=wins.win_rates.get(key), wins=wins.wins.get(key), copy_of=wins.copies.get(key),
            losses=outcome.losses.to_bytes() if outcome is not None and outcome.losses is not None else None,
        ))
    pairs = sorted(wins.comparisons.items())
    verdicts = [
        VerdictRow(competition.id, earlier, later, c.eps, c.diff_mean, c.ci_low, c.ci_high, bool(c.later_wins))
        for (earlier, later), c in pairs
    ]
    pair_evidence = [
        EvidenceRecord(competition.id, ids[earlier], ids[later], earlier, later, c.evidence.weighted_sum,
                       c.evidence.information, c.evidence.rounds, c.eps, c.acc_low, c.acc_high, bool(c.later_wins),
                       rho=c.evidence.rho)
        for (earlier, later), c in pairs
    ]
    valid = {c.key for c in candidates} - set(wins.copies) - set(wins.failed)
    leader = leader_of(previous_weights or {}, valid)
    fresh = newly_earned(wins.comparisons, leader, set(held_adv), schedule)
    earned_rows = [
        EarnedRecord(competition.id, ids[k], k, e.eps, e.leader, ids.get(e.leader), e.improvement_low,
                     e.improvement_high, e.rounds, e.by_failures)
        for k, e in sorted(fresh.items())
    ]
    return Judgement(results, verdicts, dict(wins.win_rates), dict(wins.copies), dict(wins.failed),
                     pair_evidence, earned_rows)


def smoothed_weights(
    win_rates: Mapping[str, float],
    previous: Mapping[str, float],
    registered: set[str],
    config: ValidatorConfig,
    excluded: set[str] = frozenset(),
    zeroed: set[str] = frozenset(),
) -> dict[str, float]:
    """This round's weights from win rates, blended into the stored EMA.

    `excluded` (copies) and deregistered hotkeys lose their weight at once; `zeroed` (models that
    failed this round) get nothing this round, so their EMA decays rather than vanishing on one
    transient failure.
    """
    from subnet.scoring.weights import ema_update, weights_from_win_rates

    rates = {k: v for k, v in win_rates.items() if k not in excluded and k not in zeroed}
    current = weights_from_win_rates(rates, temperature=config.softmax_temperature) if rates else {}
    current = {**{k: 0.0 for k in win_rates if k in zeroed and k not in excluded}, **current}
    kept = {k: v for k, v in previous.items() if k in registered and k not in excluded}
    if not any(v > 0 for v in current.values()):
        return kept
    blended = ema_update(kept, current, alpha=config.ema_alpha)
    return {k: float(v) for k, v in blended.items() if k in registered and k not in excluded}


def new_registrations(previous: Mapping[str, int] | None, current: Mapping[str, int]) -> set[str]:
    """Hotkeys (of `current`, hotkey -> uid) that were not registered at that uid in the previous
    recorded round: newcomers, returning hotkeys and hotkeys moved to another uid.

    Their stored EMA belongs to an earlier registration and must not carry over. `previous` None
    means nothing was recorded yet (a fresh or just-migrated state): nobody is known to be new.
    A hotkey that left and came back at the same uid between two rounds cannot be told apart from
    one that stayed (the metagraph carries no registration block).
    """
    if previous is None:
        return set()
    return {hotkey for hotkey, uid in current.items() if previous.get(hotkey) != uid}


def carried_ema(previous: Mapping[str, float], registered: Mapping[str, int], fresh: set[str]) -> dict[str, float]:
    """The part of a stored EMA that carries into this round: registered hotkeys that did not
    (re-)register since the last round. EMA is keyed by hotkey, so a new hotkey at a reused uid
    never inherits the weight of the hotkey that held the uid before."""
    return {k: float(v) for k, v in previous.items() if k in registered and k not in fresh}


def uid_weights(
    ema: Mapping[str, Mapping[str, float]], metagraph: Metagraph, competitions: Mapping[str, Competition]
) -> tuple[list[int], list[float]]:
    """Each competition's EMA scaled by its reward share, summed per uid of the current metagraph, normalised.

    Only hotkeys of `metagraph` get a uid, so a hotkey that left never receives weight, whatever the
    stored EMA says. Within a competition the registered hotkeys' EMA is renormalised to 1 before
    the share is applied; a competition with nothing to reward (no registered hotkey with positive
    EMA) contributes nothing, and the final normalisation hands its share to the competitions that
    have winners, pro rata to their shares (e.g. shares 0.5/0.3/0.2 with the last empty -> 0.625/0.375).
    Burning the share instead would need a uid to send it to; leaving it unset would make weights
    shrink as competitions open. Competitions this validator does not evaluate (absent from
    `competitions`) are skipped the same way, so their share goes to the evaluated ones.
    """
    totals: dict[int, float] = {}
    for cid, weights in ema.items():
        competition = competitions.get(cid)
        if competition is None:
            continue
        valid = {metagraph.uid_of(hk): w for hk, w in weights.items() if math.isfinite(w) and w > 0}
        valid.pop(None, None)  # deregistered hotkeys: their share goes to the registered ones
        norm = sum(valid.values())
        for uid, w in valid.items():
            totals[uid] = totals.get(uid, 0.0) + competition.reward_share * w / norm
    total = sum(totals.values())
    uids = sorted(totals)
    if total <= 0:
        return uids, [0.0 for _ in uids]
    return uids, [totals[u] / total for u in uids]
