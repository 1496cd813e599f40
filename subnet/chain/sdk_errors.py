"""One error contract for the bittensor SDK: whatever it raises or reports becomes a code of ours.

The SDK raises more than `bt.BittensorError`: its transport raises `StorageFunctionNotFound` (a
`ValueError`) for storage a runtime lacks, the SCALE codec raises `ValueError`/`TypeError`/
`KeyError` when the runtime and the SDK disagree, an RPC endpoint's refusal comes as
`bt.RpcPolicyError` with `retry_after`, and a submission whose fate is unknown comes back as a
*failed result* (or a `bt.ChainError`) with no runtime error name. Callers above the adapter see
only `subnet.chain.base.ChainError` / `WeightsResult` codes (listed in `subnet.chain.base`).
"""

from __future__ import annotations

import email.utils
import math
import time
from typing import Any

import bittensor as bt
from bittensor._transport.errors import StorageFunctionNotFound

from subnet.chain.base import ChainError

MAX_RETRY_AFTER_S = 3600.0
# Runtime error names whose SDK code says less than ours does.
_NAME_CODES = {"AccountNotAllowedCommit": "not_registered", "NeuronNoValidatorPermit": "no_permit",
               "NotEnoughStakeToSetWeights": "no_permit"}
# SDK error codes passed through as ours.
_PASSED_CODES = {"rate_limited", "not_registered", "not_authorized", "insufficient_balance", "invalid_argument",
                 "subnet_not_exists", "disabled", "limit_exceeded", "too_early", "expired", "not_found",
                 "already_exists", "policy_violation", "internal"}
# What the codec raises when the runtime's types are not what the SDK expects.
CODEC_ERRORS = (StorageFunctionNotFound, ValueError, TypeError, KeyError, IndexError)


def code_of(error: Any, *, submitted: bool = False) -> str:
    """Our code for an SDK `ChainError` (or None). A failure that names no runtime error after a
    submission is 'unknown_outcome': the extrinsic may have landed."""
    name = getattr(error, "name", None)
    if name in _NAME_CODES:
        return _NAME_CODES[name]
    code = getattr(getattr(error, "code", None), "value", None)
    if code in _PASSED_CODES:
        return code
    if submitted and not name:
        return "unknown_outcome"
    return "rejected"


def retry_after_seconds(value: Any) -> float | None:
    """An RPC endpoint's Retry-After (seconds, or an HTTP date), bounded; None when absent or unreadable."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    if math.isnan(seconds):
        return None
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))


def translate(what: str, error: BaseException, *, submitted: bool = False) -> ChainError:
    """Any exception out of the SDK (or its transport) as a ChainError with a code."""
    if isinstance(error, ChainError):
        return error
    if isinstance(error, bt.RpcPolicyError):
        return ChainError(f"{what}: the RPC endpoint refused: {error}", code="rate_limited",
                          retry_after_s=retry_after_seconds(error.retry_after))
    if isinstance(error, bt.ChainError):
        return ChainError(f"{what}: {error.message}", code=code_of(error, submitted=submitted))
    if isinstance(error, StorageFunctionNotFound):
        return ChainError(f"{what}: the runtime has no storage {error}; is the SDK too old for this chain?",
                          code="runtime_mismatch")
    if isinstance(error, CODEC_ERRORS):
        return ChainError(f"{what}: the runtime and the SDK disagree ({type(error).__name__}: {error})",
                          code="runtime_mismatch")
    if submitted:
        return ChainError(f"{what}: outcome unknown after submission: {type(error).__name__}: {error}",
                          code="unknown_outcome")
    if isinstance(error, bt.BittensorError):
        return ChainError(f"{what}: {error}", code="chain_error")
    return ChainError(f"{what}: unexpected {type(error).__name__}: {error}", code="chain_error")
