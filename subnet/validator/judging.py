"""A round's judgement: this window's new evidence, then the competition's decision from all windows.

Two steps, both pure over plain values:
1. `window_evidence`: the models scored now join the models already scored in the same window
   (earlier rounds of it); each model gets one `WindowScore` and each pair with at least one newly
   scored model one `WindowStat`. Models scored in this window before are never scored again, so
   nothing here can count a window twice, and the state refuses duplicates as well.
2. `decide_competition`: `subnet.scoring.decide` over every current model's windows, the public
   data every validator can re-derive. The weights are the decision's (the champion takes the
   competition), not a smoothed history, so a restarted or fresh validator agrees as soon as it has
   scored the windows that decide.

Our own faults (no losses at all: fetch, cache, worker) add no window: the model keeps its standing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from subnet.competitions import Competition
from subnet.eval.types import DocLosses, ScoreOutcome
from subnet.scoring.decide import Decision, Entry, decide
from subnet.scoring.loss import competition_loss, document_values
from subnet.scoring.windows import WindowStat, window_stat
from subnet.validator.state import (
    MODEL_FAILED,
    EarnedRecord,
    EvidenceRecord,
    ModelRecord,
    ResultRow,
    VerdictRow,
    WindowPair,
    WindowScore,
)


@dataclass(frozen=True)
class Judgement:
    results: list[ResultRow]
    verdicts: list[VerdictRow]
    win_rates: dict[str, float]
    copies: dict[str, str]
    failed: dict[str, str]
    weights: dict[str, float] = field(default_factory=dict)  # the decision: the champion holds 1
    evidence: list[EvidenceRecord] = field(default_factory=list)
    earned: list[EarnedRecord] = field(default_factory=list)
    window_scores: list[WindowScore] = field(default_factory=list)
    window_pairs: list[WindowPair] = field(default_factory=list)
    champion: str | None = None


def _birth(m: ModelRecord) -> tuple[int, str]:
    return (m.block, m.hotkey)


def window_evidence(competition: Competition, window: int, digest: str | None, models: Mapping[str, ModelRecord],
                    scored: Mapping[str, DocLosses], before: Mapping[int, WindowScore],
                    groups=None) -> tuple[list[WindowScore], list[WindowPair]]:
    """This window's new scores and the new pairs' statistics (`before`: the window's earlier scores)."""
    weights = [s.weight for s in competition.weighted_sources]
    by_id = {m.id: m for m in models.values()}
    new = {k: v for k, v in scored.items() if models[k].id not in before}
    per_byte = competition.free_tokenizer
    nll, tokens = {}, {}
    for k, v in new.items():
        nll[k], tokens[k] = document_values(v, per_byte)
    for model_id, s in before.items():
        m = by_id.get(model_id)
        if m is not None and s.losses is not None and m.hotkey not in nll:
            nll[m.hotkey], tokens[m.hotkey] = document_values(DocLosses.from_bytes(s.losses), per_byte)
    scores = [WindowScore(competition.id, window, models[k].id, k, len(v), int(np.isfinite(nll[k]).sum()), digest,
                          v.to_bytes()) for k, v in sorted(new.items())]
    pairs = []
    keys = sorted(nll, key=lambda k: _birth(models[k]))
    for i, earlier in enumerate(keys):
        for later in keys[i + 1:]:
            if (earlier not in new and later not in new) or nll[earlier].shape != nll[later].shape:
                continue
            stat = window_stat(window, nll[earlier], nll[later], tokens[later], groups, weights)
            pairs.append(WindowPair(competition.id, models[earlier].id, models[later].id, stat))
    return scores, pairs


def decide_competition(competition: Competition, models: Mapping[str, ModelRecord],
                       windows: Mapping[int, list[WindowScore]],
                       pairs: Mapping[tuple[int, int], list[WindowStat]], confidence: float,
                       window_blocks: int = 150, advantage_at=None) -> Decision:
    """The decision over the competition's current models from their stored (and new) windows."""
    ids = {m.id: k for k, m in models.items() if m.competition == competition.id}
    entries = []
    for model_id, key in sorted(ids.items()):
        m = models[key]
        seen = windows.get(model_id, [])
        failed = None
        if m.status == MODEL_FAILED:
            failed = f"failed: {m.reason or 'rejected'}"
        elif seen and seen[-1].failed_all:
            failed = f"all {seen[-1].n_docs} documents failed in window {seen[-1].window} (no finite loss)"
        entries.append(Entry(key, m.block, m.content_hash, len(seen), failed))
    stats = {(ids[e], ids[l]): v for (e, l), v in pairs.items() if e in ids and l in ids}
    return decide(entries, stats, competition.advantage, confidence, competition.design_rounds,
                  stride=competition.evidence_stride, window_blocks=window_blocks, advantage_at=advantage_at)


def merge_windows(stored: Mapping[int, list[WindowScore]], new: list[WindowScore]) -> dict[int, list[WindowScore]]:
    out = {k: list(v) for k, v in stored.items()}
    for s in new:
        out.setdefault(s.model_id, []).append(s)
    return {k: sorted(v, key=lambda s: s.window) for k, v in out.items()}


def merge_pairs(stored: Mapping[tuple[int, int], list[WindowStat]],
                new: list[WindowPair]) -> dict[tuple[int, int], list[WindowStat]]:
    out = {k: list(v) for k, v in stored.items()}
    for p in new:
        have = out.setdefault((p.earlier_id, p.later_id), [])
        if all(s.window != p.stat.window for s in have):
            have.append(p.stat)
    return out


def result_rows(competition: Competition, models: Mapping[str, ModelRecord], keys, fetch_failed: Mapping[str, str],
                outcomes: Mapping[str, ScoreOutcome], decision: Decision, confidence: float,
                groups=None) -> list[ResultRow]:
    """The round's rows for the tables: each model evaluated now, its loss on this window's documents."""
    weights = [s.weight for s in competition.weighted_sources]
    rows = []
    for key in sorted(keys):
        outcome = outcomes.get(key)
        losses = outcome.losses if outcome is not None else None
        nll, per = document_values(losses, competition.free_tokenizer) if losses is not None else (None, None)
        finite = int(np.isfinite(nll).sum()) if nll is not None else 0
        interval = competition_loss(nll, per, groups, weights, confidence) if finite else None
        error = fetch_failed.get(key) or (outcome.error if outcome else "not_scored") or decision.failed.get(key, "")
        rows.append(ResultRow(
            competition=competition.id, hotkey=key, uid=models[key].uid, model_id=models[key].id,
            mean_loss=interval.mean if interval else None,
            ci_low=interval.low if interval else None, ci_high=interval.high if interval else None,
            n_docs=finite, tokens_per_s=outcome.tokens_per_s if outcome else 0.0,
            seconds=outcome.seconds if outcome else 0.0, error=error,
            win_rate=decision.win_rates.get(key), wins=None, copy_of=decision.copies.get(key),
            losses=losses.to_bytes() if losses is not None else None,
        ))
    return rows


def decision_records(competition: Competition, models: Mapping[str, ModelRecord],
                     decision: Decision) -> tuple[list[VerdictRow], list[EvidenceRecord], list[EarnedRecord]]:
    """The decision as the state keeps it for display: verdicts, each pair's evidence, earned advantages."""
    cid = competition.id
    verdicts, evidence = [], []
    for (earlier, later), v in sorted(decision.verdicts.items()):
        diff = math.expm1(v.evidence.estimate) if v.evidence.rounds else math.nan
        verdicts.append(VerdictRow(cid, earlier, later, v.eps, diff, v.acc_low, v.acc_high, bool(v.later_wins)))
        evidence.append(EvidenceRecord(cid, models[earlier].id, models[later].id, earlier, later,
                                       v.evidence.weighted_sum, v.evidence.information, v.evidence.rounds, v.eps,
                                       v.acc_low, v.acc_high, bool(v.later_wins), rho=v.evidence.rho))
    earned = [EarnedRecord(cid, models[k].id, k, e.eps, e.leader, models[e.leader].id if e.leader in models else None,
                           e.improvement_low, e.improvement_high, e.rounds, e.by_failures)
              for k, e in sorted(decision.earned.items())]
    return verdicts, evidence, earned


def judge(competition: Competition, models: Mapping[str, ModelRecord], keys, fetch_failed: Mapping[str, str],
          outcomes: Mapping[str, ScoreOutcome], confidence: float, *, window: int, digest: str | None = None,
          groups=None, before: Mapping[int, WindowScore] | None = None,
          stored_windows: Mapping[int, list[WindowScore]] | None = None,
          stored_pairs: Mapping[tuple[int, int], list[WindowStat]] | None = None,
          window_blocks: int = 150, advantage_at=None) -> Judgement:
    """Judge a round of one competition: `keys` were evaluated now on window `window`'s documents.

    `before` holds the window's scores from earlier rounds; `stored_*` every stored window of the
    competition. Only outcomes with losses become window scores; the rest add no evidence.
    `advantage_at(window)`: the advantage in force at each window when the schedule retuned it.
    """
    scored = {k: o.losses for k, o in outcomes.items() if k in keys and o.losses is not None}
    scores, pairs = window_evidence(competition, window, digest, models, scored, before or {}, groups)
    decision = decide_competition(competition, models, merge_windows(stored_windows or {}, scores),
                                  merge_pairs(stored_pairs or {}, pairs), confidence, window_blocks, advantage_at)
    verdicts, evidence, earned = decision_records(competition, models, decision)
    results = result_rows(competition, models, keys, fetch_failed, outcomes, decision, confidence, groups)
    return Judgement(results, verdicts, dict(decision.win_rates), dict(decision.copies), dict(decision.failed),
                     dict(decision.weights), evidence, earned, scores, pairs, decision.champion)
