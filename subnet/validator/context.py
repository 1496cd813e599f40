"""The values a round passes between its steps, and the dependencies it runs against.

Kept apart from the steps so that each step's module imports only these types, never another step.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from subnet.chain.base import Chain
from subnet.competitions import Competition
from subnet.data.types import DocumentSource, TokenizedDocuments
from subnet.eval.types import ScoreOutcome
from subnet.hub.store import ModelStore
from subnet.validator.config import ValidatorConfig
from subnet.validator.metrics import ValidatorMetrics
from subnet.validator.state import ModelRecord, ValidatorState

if TYPE_CHECKING:
    from subnet.schedule import CompetitionSchedule

Scorer = Callable[[Sequence["ScoreJobSpec"], Competition, TokenizedDocuments], dict[str, ScoreOutcome]]


class RoundAborted(RuntimeError):
    """The daemon was asked to stop: the round is interrupted, its scores kept, and the next run resumes it."""


@dataclass(frozen=True)
class ReadyModel:
    """A scheduled model whose files are on disk, verified and within the competition's constraints."""

    record: ModelRecord
    model_dir: Path
    content_hash: str


@dataclass(frozen=True)
class ScoreJobSpec:
    key: str
    model_dir: str


@dataclass
class CompetitionOutcome:
    competition: str
    n_docs: int = 0
    scored: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    win_rates: dict[str, float] = field(default_factory=dict)
    ema: dict[str, float] = field(default_factory=dict)
    mean_loss: dict[str, float] = field(default_factory=dict)
    copies: dict[str, str] = field(default_factory=dict)
    tokens_per_s: float = 0.0
    error: str | None = None
    own_faults: dict[str, str] = field(default_factory=dict)  # not judged: failed for our fault (faults.py)
    weights_held: str | None = None  # why this competition's weights stayed as they were, if they did


@dataclass
class RoundSummary:
    round_id: int
    block: int
    seed: str
    competitions: dict[str, CompetitionOutcome]
    weights_status: str
    seconds: float = 0.0
    resumed: bool = False  # this run finished a round an earlier run had started
    n_due: int = 0  # models scheduled
    n_evaluated: int = 0  # of those, how many got a verdict (scored, or failed for good)
    window: int | None = None  # the seed block whose documents the round scored


@dataclass
class RoundDeps:
    """Everything a round talks to. Built once by the daemon; tests swap in local stand-ins."""

    chain: Chain
    store: ModelStore
    state: ValidatorState
    config: ValidatorConfig
    competitions: Mapping[str, Competition]  # the ones this validator evaluates
    known_competitions: Mapping[str, Competition]  # every competition a commitment may name
    source_for: Callable[[Competition], DocumentSource]
    scorer: Scorer
    metrics: ValidatorMetrics = field(default_factory=ValidatorMetrics)
    stop: threading.Event = field(default_factory=threading.Event)
    tokenizers: dict = field(default_factory=dict)  # tokenizer ref -> loaded tokenizer (kept across rounds)
    # Scores the state could not take (write-locked), by (round id, competition, hotkey): a resumed round
    # uses them, so a lock never costs finished scoring while this process lives.
    unsaved_scores: dict = field(default_factory=dict)
    # Which competitions are in force at each window (subnet.schedule); None: `competitions` throughout.
    schedule: CompetitionSchedule | None = None
