"""Would my model win? Score a candidate against an incumbent the way validators do.

Both models are scored on the same held-out reference documents (a fixed seed, excluded from
training) with the validator's own loader and loss engine, and compared with the validator's own
paired test and advantage schedule, on the competition's one loss (total NLL over total predicted
tokens, `subnet.scoring.loss`). The verdict is for one round of evidence: the validator pools
rounds, so a candidate that "would not win now" may still win after a few rounds.

Because the two models see the same documents, the paired interval of the difference is far
narrower than the unpaired intervals of the two means: that gap is the reason this subnet can tell apart models a fraction of a percent apart, and the
report shows both.

Verdicts (and `verdict_code`):
- "would win" (win): the paired test passes now, at the incumbent's current advantage.
- "would win once the advantage decays to X, expected around block N" (win_later): it fails now
  but passes at some later age of the incumbent; N is that age as a block.
- "would not win now" (not_significant): it fails even at the schedule's floor, yet its mean loss
  beats the incumbent's by more than the floor: more documents (or a larger margin) could decide it.
- "would not win" (never): it fails even at the floor and its mean loss does not beat the floor margin.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from subnet.competitions import AdvantageSchedule, Competition

BLOCKS_PER_DAY = 7200
WEEK_BLOCKS = 7 * BLOCKS_PER_DAY
# Past this many half-lives the advantage is the floor to within 1e-19 of eps0.
_FLOOR_HALF_LIVES = 64


@dataclass
class Verdict:
    code: str  # win | win_later | not_significant | never
    text: str
    win_advantage: float | None = None  # the advantage at which the candidate starts to win
    win_age_blocks: float | None = None  # the incumbent's age at that point
    win_block: int | None = None  # that age as a block number, when the incumbent's block is known


@dataclass
class BenchmarkReport:
    n_documents: int
    candidate_losses: np.ndarray  # per-document per-token loss (NaN = failed), for the plots
    incumbent_losses: np.ndarray
    candidate: object  # subnet.scoring.stats.Interval
    incumbent: object
    paired: object  # Interval of L_candidate - L_incumbent (delta method on the paired ratio)
    unpaired_diff: float
    unpaired_ci_low: float
    unpaired_ci_high: float
    comparison: object  # subnet.scoring.compare.Comparison, as the validator decides
    incumbent_age_blocks: float
    advantage_now: float
    advantage_week: float
    verdict: Verdict
    confidence: float = 0.95
    tokens: np.ndarray | None = None  # predicted tokens per document (None: every document weighs 1)

    @property
    def width_ratio(self) -> float:
        """Unpaired interval width / paired interval width: above 1 the paired one is narrower."""
        paired = self.paired.high - self.paired.low
        unpaired = self.unpaired_ci_high - self.unpaired_ci_low
        return unpaired / paired if paired > 0 else math.inf

    def width_comparison(self) -> str:
        """The paired interval against the unpaired one, worded the right way round ("1.8x wider",
        never "narrower by 0.5x")."""
        ratio = self.width_ratio
        if not math.isfinite(ratio):
            return "paired interval has no width" if ratio > 0 else "unpaired interval is unbounded"
        if ratio >= 1:
            return f"paired interval {ratio:.1f}x narrower than unpaired"
        return f"paired interval {1 / ratio:.1f}x wider than unpaired"

    def to_json_dict(self) -> dict:
        c = self.comparison
        return {
            "n_documents": self.n_documents,
            "candidate_mean_loss": self.candidate.mean,
            "candidate_ci_low": self.candidate.low,
            "candidate_ci_high": self.candidate.high,
            "incumbent_mean_loss": self.incumbent.mean,
            "incumbent_ci_low": self.incumbent.low,
            "incumbent_ci_high": self.incumbent.high,
            "paired_diff": self.paired.mean,
            "paired_ci_low": self.paired.low,
            "paired_ci_high": self.paired.high,
            "unpaired_diff": self.unpaired_diff,
            "unpaired_ci_low": self.unpaired_ci_low,
            "unpaired_ci_high": self.unpaired_ci_high,
            "width_ratio": self.width_ratio,
            "decision_diff": c.diff_mean,
            "decision_ci_low": c.ci_low,
            "decision_ci_high": c.ci_high,
            "incumbent_age_blocks": self.incumbent_age_blocks,
            "advantage_now": self.advantage_now,
            "advantage_week": self.advantage_week,
            "confidence": self.confidence,
            "verdict": self.verdict.text,
            "verdict_code": self.verdict.code,
            "win_advantage": self.verdict.win_advantage,
            "win_block": self.verdict.win_block,
        }

    def to_json(self) -> str:
        return json.dumps(_finite_or_none(self.to_json_dict()), sort_keys=True)


def _finite_or_none(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


# ----------------------------------------------------------------------------- pure comparison


def compare_losses(
    candidate: np.ndarray,
    incumbent: np.ndarray,
    incumbent_age_blocks: float,
    schedule: AdvantageSchedule,
    *,
    tokens: np.ndarray | None = None,
    incumbent_block: int | None = None,
    confidence: float = 0.95,
    earned_eps: float | None = None,
) -> BenchmarkReport:
    """The report for per-document losses of two models on the same documents (NaN = failed).

    With `tokens` the losses are each document's summed NLL and the loss is per token; without,
    they are per-document losses that each weigh the same.
    """
    from subnet.scoring.compare import paired_compare

    candidate = np.asarray(candidate, dtype=np.float64)
    incumbent = np.asarray(incumbent, dtype=np.float64)
    if candidate.shape != incumbent.shape or candidate.ndim != 1 or len(candidate) == 0:
        raise ValueError(f"need two equal-length loss vectors, got {candidate.shape} and {incumbent.shape}")
    if incumbent_age_blocks < 0:
        raise ValueError(f"incumbent age must not be negative, got {incumbent_age_blocks}")
    cand_iv, inc_iv, paired_iv, (diff, low, high) = loss_intervals(candidate, incumbent, tokens, confidence)
    comparison = paired_compare(incumbent, candidate, incumbent_age_blocks, schedule, confidence, tokens=tokens,
                                eps=incumbent_advantage(schedule, earned_eps)(incumbent_age_blocks))
    verdict = decide(incumbent, candidate, incumbent_age_blocks, schedule, confidence, incumbent_block, tokens,
                     earned_eps)
    per_doc = np.ones_like(candidate) if tokens is None else np.asarray(tokens, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        cand_per_doc, inc_per_doc = candidate / per_doc, incumbent / per_doc
    return BenchmarkReport(
        n_documents=len(candidate), candidate_losses=cand_per_doc, incumbent_losses=inc_per_doc,
        candidate=cand_iv, incumbent=inc_iv, paired=paired_iv,
        unpaired_diff=diff, unpaired_ci_low=low, unpaired_ci_high=high, comparison=comparison,
        incumbent_age_blocks=float(incumbent_age_blocks),
        advantage_now=incumbent_advantage(schedule, earned_eps)(incumbent_age_blocks),
        advantage_week=incumbent_advantage(schedule, earned_eps)(incumbent_age_blocks + WEEK_BLOCKS),
        verdict=verdict, confidence=confidence, tokens=None if tokens is None else np.asarray(tokens, dtype=np.float64),
    )


def loss_intervals(candidate: np.ndarray, incumbent: np.ndarray, tokens: np.ndarray | None, confidence: float):
    """The competition's loss of each model (total NLL / total tokens) with its interval, the paired
    difference (delta method on the paired ratio, as validators test) and the unpaired one: the
    table's numbers, and the plot's at every prefix of the documents."""
    from subnet.scoring.loss import competition_loss, paired_log_ratio
    from subnet.scoring.stats import Interval

    cand_iv = competition_loss(candidate, tokens, confidence=confidence)
    inc_iv = competition_loss(incumbent, tokens, confidence=confidence)
    stat = paired_log_ratio(incumbent, candidate, tokens)
    rel_low, rel_high = stat.relative_interval(confidence)
    scale = inc_iv.mean
    paired_iv = Interval(cand_iv.mean - inc_iv.mean, scale * stat.ratio * math.sqrt(stat.variance),
                         scale * rel_low, scale * rel_high, stat.n)
    return cand_iv, inc_iv, paired_iv, unpaired_difference(cand_iv, inc_iv, confidence)


def unpaired_difference(a, b, confidence: float = 0.95) -> tuple[float, float, float]:
    """Difference of two means as if they came from different documents (Welch's t interval).

    This is what comparing two models' scores from separate samples would give; the paired
    interval is what the validator actually uses.
    """
    from subnet.scoring.stats import t_quantile

    diff = a.mean - b.mean
    var = a.stderr**2 + b.stderr**2
    if not (math.isfinite(var) and a.n >= 2 and b.n >= 2):
        return diff, -math.inf, math.inf
    if var == 0:
        return diff, diff, diff
    df = var**2 / (a.stderr**4 / (a.n - 1) + b.stderr**4 / (b.n - 1))
    half = t_quantile(confidence, max(1, int(df))) * math.sqrt(var)
    return diff, diff - half, diff + half


def incumbent_advantage(schedule: AdvantageSchedule, earned_eps: float | None = None):
    """The incumbent's advantage at an age, as the validator gives it (`subnet.scoring.earned`).

    In mode "earned" the incumbent holds what it earned; unknown here unless given (`earned_eps`, e.g.
    from a validator's `/scores`), so the benchmark assumes the most it can hold: the cap.
    """
    from subnet.scoring.earned import EarnedAdvantage, model_advantage

    if schedule.mode != "earned":
        return lambda age: model_advantage(age, schedule)
    eps = schedule.cap if earned_eps is None else float(earned_eps)
    earned = EarnedAdvantage("incumbent", eps, "", 0.0, 0.0, 0)
    return lambda age: model_advantage(age, schedule, earned)


def decide(
    incumbent: np.ndarray,
    candidate: np.ndarray,
    age_blocks: float,
    schedule: AdvantageSchedule,
    confidence: float,
    incumbent_block: int | None,
    tokens: np.ndarray | None = None,
    earned_eps: float | None = None,
    design_rounds: float = 3.0,
) -> Verdict:
    """Search the incumbent's future ages for the first at which the validator's test passes.

    The test is the validator's own (`subnet.scoring.windows.fold_pair` on one window of these
    documents, against the incumbent's advantage as the validator computes it). The advantage only
    shrinks with age, so "wins at age a" is monotone and a bisection finds the first winning age.
    """
    from subnet.scoring.windows import fold_pair, window_stat

    stat = window_stat(0, incumbent, candidate, tokens)
    eps_of = incumbent_advantage(schedule, earned_eps)

    def compare(age: float):
        verdict = fold_pair([stat], lambda _w: eps_of(age), confidence, design_rounds)
        diff = math.expm1(verdict.evidence.estimate) if verdict.evidence.rounds else math.nan
        return SimpleNamespace(later_wins=verdict.later_wins, eps=eps_of(age), diff_mean=diff)

    def advantage(age: float, _schedule) -> float:
        return eps_of(age)

    if compare(age_blocks).later_wins:
        return Verdict("win", "would win", advantage(age_blocks, schedule), age_blocks, incumbent_block)
    far = age_blocks + _FLOOR_HALF_LIVES * schedule.half_life_blocks
    at_floor = compare(far)
    if not at_floor.later_wins:
        if math.isfinite(at_floor.diff_mean) and at_floor.diff_mean < -at_floor.eps:
            return Verdict("not_significant", "would not win now")
        return Verdict("never", "would not win")
    lo, hi = age_blocks, far
    while hi - lo > 1.0:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if compare(mid).later_wins else (mid, hi)
    eps = advantage(hi, schedule)
    block = None if incumbent_block is None else int(math.ceil(incumbent_block + hi))
    wait = hi - age_blocks
    when = f"around block {block}" if block is not None else f"in about {wait:,.0f} blocks"
    text = (f"would win once the advantage decays to {eps:.4%}, expected {when} "
            f"(~{wait / BLOCKS_PER_DAY:.1f} days from now)")
    return Verdict("win_later", text, eps, hi, block)


# ----------------------------------------------------------------------------- scoring models


def resolve_device(device: str) -> str:
    """The one indexed device to score on (see subnet.devices)."""
    from subnet.devices import resolve_device as resolve

    return resolve(device)


def reference_set(competition: Competition, n_documents: int = 0, dataset: str = ""):
    """The held-out reference documents, tokenized as the validator tokenizes a round."""
    from subnet.data.sampling import tokenize_documents
    from subnet.data.tokenizer import load_tokenizer
    from subnet.miner.data import make_training_source, reference_documents

    source = make_training_source(competition, dataset)
    documents = reference_documents(source, n_documents or competition.sampling.max_documents)
    if competition.free_tokenizer:  # each model tokenizes the texts itself, as in a validator's round
        from subnet.data.texts import text_documents

        return text_documents(documents, competition.max_seq_len)
    tokenizer = load_tokenizer(competition.tokenizer)
    return tokenize_documents(documents, tokenizer, competition.max_seq_len)


def score_model(model_dir: Path | str, competition: Competition, docs, device: str = "cpu"):
    """Per-document losses (`DocLosses`) with the validator's loader and engine (in-process)."""
    import torch

    from subnet.eval.free_tokens import score_documents
    from subnet.hub.loading import load_model
    from subnet.progress import WorkProgress

    model = load_model(Path(model_dir), competition, device=device)
    try:
        with WorkProgress(f"scoring {Path(model_dir).name}", len(docs), "docs") as progress:
            return score_documents(model, model_dir, docs, competition.max_seq_len, device=device,
                                   on_documents=progress.advance)
    finally:
        del model
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


def benchmark(
    candidate_dir: Path | str,
    incumbent_dir: Path | str,
    competition: Competition,
    *,
    incumbent_age_blocks: float = 0.0,
    incumbent_block: int | None = None,
    n_documents: int = 0,
    dataset: str = "",
    device: str = "auto",
    confidence: float = 0.95,
    earned_eps: float | None = None,
) -> BenchmarkReport:
    docs = reference_set(competition, n_documents, dataset)
    device = resolve_device(device)
    from subnet.scoring.loss import document_values

    candidate, per = document_values(score_model(candidate_dir, competition, docs, device), competition.free_tokenizer)
    incumbent, _ = document_values(score_model(incumbent_dir, competition, docs, device), competition.free_tokenizer)
    # Free tokenizers: bits over the texts' bytes (the same for both models), as validators compare them.
    return compare_losses(candidate, incumbent, incumbent_age_blocks,
                          competition.advantage, tokens=per, incumbent_block=incumbent_block,
                          confidence=confidence, earned_eps=earned_eps)
