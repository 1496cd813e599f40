"""The validator's memory: one SQLite file that survives restarts and weeks of running.

Why SQLite: one file, atomic transactions, readable with any tool while the daemon runs (WAL).
Every write that must be all-or-nothing (a round's results together with the EMA it produced)
goes through one transaction, so a kill -9 at any point leaves a state we can resume from.

Schema changes are ordered migration functions; `PRAGMA user_version` records how many ran.
"""

from __future__ import annotations

from subnet.validator.state.base import StateBase, is_lock_error  # noqa: F401
from subnet.validator.state.evidence import EarnedRecord, EvidenceMixin, EvidenceRecord  # noqa: F401
from subnet.validator.state.history import HistoryMixin
from subnet.validator.state.models import ModelsMixin
from subnet.validator.state.records import (  # noqa: F401
    ATTEMPT_FAILED,
    ATTEMPT_INTENT,
    ATTEMPT_SKIPPED,
    ATTEMPT_SUCCESS,
    ATTEMPT_UNKNOWN,
    MODEL_FAILED,
    MODEL_INVALID,
    MODEL_PENDING,
    MODEL_RETRY,
    MODEL_VERIFIED,
    ROUND_DISCARDED,
    ROUND_DONE,
    ROUND_FAILED,
    ROUND_INTERRUPTED,
    ROUND_SCORED,
    ROUND_STARTED,
    ROUND_WEIGHTS_SET,
    AttemptRecord,
    ModelRecord,
    Registration,
    ResultRow,
    RoundRecord,
    ScoredModel,
    StateBusy,
    StateError,
    VerdictRow,
)
from subnet.validator.state.recovery import Recovery, RecoveryMixin  # noqa: F401
from subnet.validator.state.registrations import RegistrationsMixin
from subnet.validator.state.retention import Pruned, RetentionMixin  # noqa: F401
from subnet.validator.state.rounds import RoundsMixin
from subnet.validator.state.schema import MIGRATIONS, SCHEMA_VERSION  # noqa: F401
from subnet.validator.state.weights import WeightAttemptsMixin
from subnet.validator.state.windows import WindowPair, WindowScore, WindowsMixin  # noqa: F401


class ValidatorState(
    ModelsMixin, RoundsMixin, HistoryMixin, RegistrationsMixin, WeightAttemptsMixin, RecoveryMixin, EvidenceMixin,
    RetentionMixin, WindowsMixin,
    StateBase,
):
    """Typed access to the state database. Thread-safe: the status API reads from another thread."""
