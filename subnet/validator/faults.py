"""Whose fault a failure is: the miner's (evidence about its model) or ours (no evidence at all).

One table decides, so fetching, scoring, the judge, the weights, the recovery of parked models and
`/healthz` all agree. A code is ours when it names the validator's own resources: its store
connection, its disk, its model cache, its scoring workers, or a bug in its checks. Such a failure
says nothing about the model, so it must neither lose the model a comparison nor cost it weight;
only what the miner controls (its files, its config, its model's losses) may.
"""

from __future__ import annotations

from typing import Mapping

# code -> the resource of ours that failed (what must come back before the model is tried again)
RESOURCE_OF: Mapping[str, str] = {
    "store_unavailable": "store",  # the store did not answer, or said no and is asked again first
    "fetch_timeout": "store",  # fetching and checking ran past its deadline (a slow store)
    "fetch_io_error": "store",  # reading the store or writing our cache failed (permissions, I/O)
    "disk_full": "disk",  # no room under the free-disk floor for the download
    "check_error": "checks",  # a bug in our checks (an exception that names no property of the repo)
    "check_out_of_memory": "checks",  # our checks ran out of memory
    "cache_lost": "cache",  # the cached copy vanished or changed while the model was scored
    "worker_error": "workers",  # the scoring worker could not run (its documents or result files)
}
OWN_FAULTS = frozenset(RESOURCE_OF)


def is_own_fault(code: str | None) -> bool:
    """True when `code` (a model's failure reason or a score's error) is the validator's own fault."""
    return bool(code) and code in OWN_FAULTS


def resource_of(code: str | None) -> str | None:
    """The resource of ours a failure code blames, or None when the code is the miner's."""
    return RESOURCE_OF.get(code or "")


def own_faults(failures: Mapping[str, str]) -> dict[str, str]:
    """The entries of `failures` (key -> reason) that are our fault."""
    return {k: v for k, v in failures.items() if is_own_fault(v)}
