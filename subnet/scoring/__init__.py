"""Scoring, pure: the one loss, the advantage, window-keyed paired evidence, the champion chain, Yuma. No I/O."""

from subnet.scoring.advantage import advantage, blocks_until_advantage_below
from subnet.scoring.compare import Comparison, paired_compare
from subnet.scoring.decide import Decision, Entry, decide
from subnet.scoring.earned import EarnedAdvantage, earned_eps, model_advantage
from subnet.scoring.loss import RatioStat, competition_loss, document_nll, paired_log_ratio
from subnet.scoring.sequential import PairEvidence
from subnet.scoring.stats import Interval, mean_interval, t_quantile
from subnet.scoring.windows import PairVerdict, WindowStat, fold_pair, window_stat
from subnet.scoring.wins import Candidate, WinResult, compute_wins, failure_reason, find_copies

__all__ = [
    "Candidate",
    "Comparison",
    "Decision",
    "Entry",
    "PairVerdict",
    "WindowStat",
    "EarnedAdvantage",
    "Interval",
    "PairEvidence",
    "RatioStat",
    "WinResult",
    "advantage",
    "blocks_until_advantage_below",
    "competition_loss",
    "compute_wins",
    "decide",
    "document_nll",
    "earned_eps",
    "failure_reason",
    "find_copies",
    "fold_pair",
    "mean_interval",
    "model_advantage",
    "paired_compare",
    "paired_log_ratio",
    "t_quantile",
    "window_stat",
]
