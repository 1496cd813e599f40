"""Step 4 of a round: each scheduled model fetched (or reused), verified and checked on disk.

A miner's model that fails here is recorded on its record with a reason; the round goes on.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Mapping, Sequence

from subnet.competitions import Competition
from subnet.hub.errors import ModelRejected
from subnet.hub.model_ref import ModelRef, ModelRefError
from subnet.hub.store import StoreError
from subnet.validator import state as st
from subnet.validator.context import ReadyModel, RoundAborted, RoundDeps
from subnet.validator.state import ModelRecord

# How often a store that answers "not found"/"forbidden" is asked again before the model fails for good.
MAX_STORE_ATTEMPTS = 3


def prepare_models(
    deps: RoundDeps, models: Mapping[str, ModelRecord], keys: Sequence[str], competition: Competition
) -> tuple[dict[str, ReadyModel], dict[str, str]]:
    """Fetch (or reuse) and check each scheduled model. Returns (ready, failed: key -> reason)."""
    from subnet.hub.download import fetch_verified, verified_directory_hash
    from subnet.hub.hashing import directory_hash
    from subnet.hub.loading import check_model_dir

    ready: dict[str, ReadyModel] = {}
    failed: dict[str, str] = {}
    disk_ok = _free_bytes(deps.config.models_dir) >= deps.config.min_free_disk_bytes
    for key in keys:
        if deps.stop.is_set():
            raise RoundAborted("stop requested while fetching models")
        record = models[key]
        ref = ModelRef.parse(record.ref)
        reusable = record.status == st.MODEL_VERIFIED and record.model_dir and Path(record.model_dir).is_dir()
        if not reusable and not disk_ok:
            deps.state.mark_failed(record.id, "disk_full", "free disk below the floor", transient=True)
            failed[key] = "disk_full"
            continue
        try:
            path = fetch_verified(deps.store, ref, record.hotkey, competition, deps.config.models_dir)
            content_hash = verified_directory_hash(path) or directory_hash(path)
            check_model_dir(path, competition)
        except ModelRejected as e:
            deps.state.mark_failed(record.id, e.reason, e.detail)
            failed[key] = e.reason
            deps.metrics.failures.labels(reason=e.reason).inc()
            continue
        except StoreError as e:
            permanent = not e.transient and record.attempts + 1 >= MAX_STORE_ATTEMPTS
            reason = "store_error" if permanent else "store_unavailable"
            deps.state.mark_failed(record.id, reason, str(e), transient=not permanent)
            failed[key] = reason
            deps.metrics.failures.labels(reason=reason).inc()
            continue
        except OSError as e:  # our own disk; the model is not at fault
            deps.state.mark_failed(record.id, "fetch_io_error", str(e), transient=True)
            failed[key] = "fetch_io_error"
            continue
        if record.status != st.MODEL_VERIFIED or record.model_dir != str(path) or record.content_hash != content_hash:
            deps.state.mark_verified(record.id, str(path), content_hash)
        ready[key] = ReadyModel(record, path, content_hash)
    return ready, failed


def clean_model_cache(deps: RoundDeps, models: Mapping[str, ModelRecord]) -> list[Path]:
    """Delete downloaded models no current commitment refers to, oldest first, down to the free-disk floor."""
    from subnet.hub.download import model_cache_dir, remove_unreferenced

    keep = set()
    for m in models.values():
        if m.status in (st.MODEL_VERIFIED, st.MODEL_PENDING, st.MODEL_RETRY) and m.competition:
            try:
                keep.add(model_cache_dir(deps.config.models_dir, m.hotkey, ModelRef.parse(m.ref).commit))
            except (ValueError, ModelRefError):
                continue
    removed = remove_unreferenced(deps.config.models_dir, keep, deps.config.min_free_disk_bytes)
    if removed:
        gone = {str(p) for p in removed}
        for m in deps.state.models(st.MODEL_VERIFIED):
            if m.model_dir in gone:
                deps.state.forget_model_dir(m.id)
    return removed


def _free_bytes(path: Path) -> int:
    path.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(path).free
