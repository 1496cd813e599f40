"""Scoring, pure: the advantage, paired comparisons, wins, and weights. No I/O anywhere in here."""

from subnet.scoring.advantage import advantage, blocks_until_advantage_below
from subnet.scoring.compare import Comparison, paired_compare
from subnet.scoring.stats import Interval, mean_interval, t_quantile
from subnet.scoring.weights import ema_update, weights_from_win_rates
from subnet.scoring.wins import Candidate, WinResult, compute_wins, failure_reason, find_copies

__all__ = [
    "Candidate",
    "Comparison",
    "Interval",
    "WinResult",
    "advantage",
    "blocks_until_advantage_below",
    "compute_wins",
    "ema_update",
    "failure_reason",
    "find_copies",
    "mean_interval",
    "paired_compare",
    "t_quantile",
    "weights_from_win_rates",
]
