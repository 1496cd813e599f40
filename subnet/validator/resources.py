"""Our own resources, looked at each round, so a model parked for our fault is retried once they are back.

Parking (state.models.park_seconds) spares a broken store or a full disk from being hammered, but
its backoff knows nothing of the resource: a model parked for ten minutes waited them out even
when the disk had been grown a minute later. Before each new plan, `unpark_recovered` asks the
resource itself, cheaply: the disk has more room than when it last refused a download; the store
answers a listing of a parked model's revision (an answer of any kind, even "not found", is the
store working: a miner's deleted repo is then judged as the miner's).
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from dataclasses import replace
from typing import Mapping

from subnet.validator.context import RoundAborted, RoundDeps
from subnet.validator.faults import is_own_fault, resource_of
from subnet.validator.state import ModelRecord

log = logging.getLogger(__name__)

DISK_FULL_META = "disk_full_free_bytes"  # free bytes when the disk last refused a download
PROBE_TIMEOUT_S = 30.0


def note_disk_full(deps: RoundDeps) -> None:
    """Remember how much room the disk had when it refused a download (best effort)."""
    from subnet.hub.cache import disk_free

    try:
        deps.state.set_meta(DISK_FULL_META, disk_free(deps.config.models_dir))
    except Exception as e:  # noqa: BLE001 - without it parked models wait out their backoff, as before
        log.warning("could not note the free disk: %s", e)


def disk_back(deps: RoundDeps) -> bool:
    """The disk has more room now than when it last refused a download."""
    from subnet.hub.cache import disk_free

    refused_at = deps.state.get_meta(DISK_FULL_META)
    try:
        free = disk_free(deps.config.models_dir)
    except OSError:
        return False
    return not isinstance(refused_at, (int, float)) or free > refused_at


def store_back(deps: RoundDeps, record: ModelRecord) -> bool:
    """The store answers a listing of `record`'s revision, and our cache directory takes a file."""
    from subnet.hub.contained import StopRequested, run_with_deadline
    from subnet.hub.download import FetchDeadline
    from subnet.hub.model_ref import ModelRef
    from subnet.hub.store import StoreError

    try:
        ref = ModelRef.parse(record.ref)
        deps.config.models_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=deps.config.models_dir)
        os.close(fd)
        os.unlink(probe)
        run_with_deadline(functools.partial(deps.store.list_files, ref.namespace, ref.name, ref.commit),
                          min(PROBE_TIMEOUT_S, deps.config.fetch_timeout_per_model_s), stop=deps.stop,
                          name="store-probe")
    except StopRequested as e:
        raise RoundAborted(str(e)) from None
    except StoreError as e:
        return not e.transient
    except (OSError, FetchDeadline, MemoryError):
        return False
    except Exception:  # noqa: BLE001 - any other answer (e.g. a refused listing) is the store working
        return True
    return True


def unpark_recovered(deps: RoundDeps, models: Mapping[str, ModelRecord]) -> dict[str, ModelRecord]:
    """`models` with those parked for a resource of ours that is back made schedulable again."""
    parked = [m for m in models.values() if m.parked() and is_own_fault(m.reason)]
    back: list[ModelRecord] = []
    disk = [m for m in parked if resource_of(m.reason) == "disk"]
    if disk and disk_back(deps):
        back += disk
    store = [m for m in parked if resource_of(m.reason) == "store"]
    if store and store_back(deps, store[0]):
        back += store
    if not back:
        return dict(models)
    deps.state.unpark([m.id for m in back])
    log.info("retrying %d parked model(s) now that %s is back: %s", len(back),
             " and ".join(sorted({resource_of(m.reason) or "?" for m in back})),
             ", ".join(sorted(m.hotkey for m in back)))
    ids = {m.id for m in back}
    return {k: replace(m, retry_after=None) if m.id in ids else m for k, m in models.items()}
