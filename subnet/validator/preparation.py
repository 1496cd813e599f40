"""Step 4 of a round: each scheduled model fetched (or reused), verified and checked on disk.

Everything done for one model runs behind one containment boundary (`subnet.hub.contained`): on a
worker thread with a deadline, so a slow store or check never holds the round, the API or the stop
signal; and any exception it raises becomes that model's recorded failure with a reason. Only a
property of what the store serves for the pinned revision fails a model for good; our store
connection, disk, cache or a bug in our checks is transient (retried, then parked with backoff).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from subnet.competitions import Competition
from subnet.hub.contained import Failure, StopRequested, classify, run_with_deadline
from subnet.hub.model_ref import ModelRef, ModelRefError
from subnet.validator import state as st
from subnet.validator.context import ReadyModel, RoundAborted, RoundDeps
from subnet.validator.resources import note_disk_full
from subnet.validator.state import ModelRecord

log = logging.getLogger(__name__)

# How often a store that answers "not found"/"forbidden" is asked again before the model fails for good.
MAX_STORE_ATTEMPTS = 3


def fetch_and_check(deps: RoundDeps, record: ModelRecord, competition: Competition,
                    deadline: float | None = None, models: Mapping[str, ModelRecord] | None = None) -> tuple[Path, str]:
    """Fetch (or reuse an intact cached copy of) one model and run every check: (directory, content hash).

    Short of disk, models no commitment in `models` refers to are evicted before the download is refused.
    """
    from subnet.hub.cache import verified_directory_hash
    from subnet.hub.download import fetch_verified
    from subnet.hub.hashing import directory_hash
    from subnet.hub.loading import check_model_dir

    ref = ModelRef.parse(record.ref)
    path = fetch_verified(deps.store, ref, record.hotkey, competition, deps.config.models_dir,
                          min_free_bytes=deps.config.min_free_disk_bytes, deadline=deadline,
                          make_room=None if models is None else functools.partial(clean_model_cache, deps, models))
    content_hash = verified_directory_hash(path) or directory_hash(path)
    check_model_dir(path, competition)
    return path, content_hash


def _record_failure(deps: RoundDeps, record: ModelRecord, failure: Failure) -> str:
    """Store the failure on the model and count it; returns the reason."""
    reason, transient = failure.reason, failure.transient
    if reason == "store_error" and record.attempts + 1 < MAX_STORE_ATTEMPTS:
        reason, transient = "store_unavailable", True  # the store said no; ask again before believing it
    deps.state.mark_failed(record.id, reason, failure.detail, transient=transient)
    if reason == "disk_full":
        note_disk_full(deps)  # parked models are retried once the disk has more room than now
    deps.metrics.failures.labels(reason=reason).inc()
    (log.warning if transient else log.info)("model %s (%s) %s: %s: %s", record.hotkey, record.ref[:60],
                                             "failed for now" if transient else "rejected", reason, failure.detail)
    return reason


def prepare_models(
    deps: RoundDeps, models: Mapping[str, ModelRecord], keys: Sequence[str], competition: Competition
) -> tuple[dict[str, ReadyModel], dict[str, str]]:
    """Fetch (or reuse) and check each scheduled model. Returns (ready, failed: key -> reason)."""
    ready: dict[str, ReadyModel] = {}
    failed: dict[str, str] = {}
    timeout_s = deps.config.fetch_timeout_per_model_s
    for key in keys:
        if deps.stop.is_set():
            raise RoundAborted("stop requested while fetching models")
        record = models[key]
        deadline = time.monotonic() + timeout_s
        try:
            path, content_hash = run_with_deadline(
                functools.partial(fetch_and_check, deps, record, competition, deadline, models), timeout_s,
                stop=deps.stop,
                name=f"fetch-{record.hotkey[:12]}",
            )
        except StopRequested as e:
            raise RoundAborted(str(e)) from None
        except Exception as e:  # noqa: BLE001 - the containment boundary: it costs this model only
            failed[key] = _record_failure(deps, record, classify(e))
            continue
        if record.status != st.MODEL_VERIFIED or record.model_dir != str(path) or record.content_hash != content_hash \
                or record.transient_failures:
            deps.state.mark_verified(record.id, str(path), content_hash)
        ready[key] = ReadyModel(record, path, content_hash)
    return ready, failed


def clean_model_cache(deps: RoundDeps, models: Mapping[str, ModelRecord], needed: int = 0) -> list[Path]:
    """Delete downloaded models no current commitment refers to, oldest first, until the free-disk floor
    (plus `needed` bytes for a download about to start) is free."""
    from subnet.hub.cache import model_cache_dir, remove_unreferenced

    keep = set()
    for m in models.values():
        if m.status in (st.MODEL_VERIFIED, st.MODEL_PENDING, st.MODEL_RETRY) and m.competition:
            try:
                keep.add(model_cache_dir(deps.config.models_dir, m.hotkey, ModelRef.parse(m.ref).commit))
            except (ValueError, ModelRefError):
                continue
    removed = remove_unreferenced(deps.config.models_dir, keep, deps.config.min_free_disk_bytes + max(0, needed))
    if removed:
        gone = {str(p) for p in removed}
        for m in deps.state.models(st.MODEL_VERIFIED):
            if m.model_dir in gone:
                deps.state.forget_model_dir(m.id)
    return removed
