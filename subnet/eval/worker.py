"""Score each model in its own process, so that no model can take the round down.

A miner's model is untrusted input. It can be too large, allocate without bound, produce NaN,
or trip a bug in a kernel that hangs or segfaults. Each model is therefore loaded and scored by
a fresh process started with the 'spawn' context (safe with CUDA), which loads the weights
itself from disk through an importable `loader`; the parent never holds or pickles a model.
The parent writes the round's documents once to a temporary .npz that every worker reads,
enforces a hard wall-clock limit per model (the process is killed when it runs over), and
turns every way a worker can end into a ScoreOutcome with a short error code:

  ''              scored
  'rejected:X'    the loader raised ModelRejected(reason=X)
  'memory_limit'  the worker ran into its memory cap: the address-space limit on CPU, the
                  device's own memory on GPU (`detail` names the cap)
  'oom'           MemoryError with no cap of ours, or the process was SIGKILLed (what the
                  kernel's out-of-memory killer does)
  'timeout'       still running at the wall-clock limit; killed
  'crashed'       died by another signal (e.g. SIGSEGV) or exited nonzero without a result
  'unsupported'   the engine cannot compute this model's losses exactly
  'generation:X'  the competition's generation check failed the model (X: repeats | ignores_prompt,
                  see eval/generation.py); not scored
  'error'         any other exception; `detail` names it
  'worker_error'  the worker could not read the round's documents (our fault, see validator/faults.py)

Several devices (`devices=['cuda:0', 'cuda:1']`) score models in parallel, one worker per device.
In a competition with `sliced_eval`, a model too large for the device is scored a slice of layers at a
time (subnet/eval/sliced.py); its failures end the same way as above.

In a free-tokenizer round the documents file holds the texts, and the worker tokenizes them with the
model's own tokenizer.json (`subnet.eval.free_tokens`), inside the same time and memory limits.

A worker never outlives the daemon that started it: it asks the kernel for SIGKILL when its parent
dies (Linux `PR_SET_PDEATHSIG`), polls its parent's pid as a fallback, and enforces its own time
limit, so a `kill -9` of the daemon or a hung model leaves nothing running. The documents file
lives in a `subnet-eval-p<pid>-*` temporary directory; `remove_stale_temp_dirs` deletes those
whose process is gone (the daemon calls it at start-up).
"""

from __future__ import annotations

import base64
import json
import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import re
import shutil
import signal
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from subnet.competitions import Competition, get_competition
from subnet.data.types import TokenizedDocuments
from subnet.eval.docfile import save_documents
from subnet.eval.types import DocLosses, ScoreOutcome
from subnet.eval.worker_process import resolve_loader, worker_main
from subnet.pids import alive

log = logging.getLogger(__name__)

TEMP_PREFIX = "subnet-eval-"
WORKER_NAME_PREFIX = "score-"
# The worker's own time limit runs this much past the parent's, so the parent normally reports 'timeout'.
SELF_LIMIT_GRACE_S = 5.0
UNNAMED_TEMP_AGE_S = 600.0
# CPU workers' address-space cap (when none is given): the interpreter, torch and thread arenas,
# plus room for the weights upcast to float32 (twice a bf16 file) and activations.
CAP_BASE_BYTES = 4 * 1024**3
CAP_PER_MODEL_BYTE = 3


@dataclass(frozen=True)
class ScoreJob:
    key: str  # the caller's name for this model, e.g. a hotkey; keys the result
    model_dir: str
    timeout_s: float | None = None  # overrides score_models' timeout_s for this model


@dataclass
class _Running:
    job: ScoreJob
    process: Any
    result_path: Path
    started: float
    deadline: float


def score_models(
    jobs: Sequence[ScoreJob],
    competition_id: str | Competition,
    docs: TokenizedDocuments,
    device: str = "cpu",
    timeout_s: float = 600,
    loader: str = "subnet.hub.loading:load_model",
    devices: Sequence[str] | None = None,
    max_memory_bytes: int | None = None,
    token_budget: int | None = None,
    device_memory_bytes: int | None = None,
) -> dict[str, ScoreOutcome]:
    """Every job's outcome, keyed by job.key. Never raises for a model's fault.

    `max_memory_bytes` caps each CPU worker's address space (RLIMIT_AS) so a model that allocates
    too much fails with 'memory_limit' instead of pushing the machine into swap; None picks
    `default_memory_cap`, 0 sets none. GPU workers are capped by the device's own memory (CUDA
    needs a large virtual address space, so no RLIMIT_AS there). `token_budget` is passed to
    compute_losses. `device_memory_bytes` replaces the device's memory where a competition with
    `sliced_eval` decides whether to score a model sliced (subnet/eval/sliced.py; on CPU there is no
    slicing without it).
    """
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate job keys: {sorted({k for k in keys if keys.count(k) > 1})}")
    resolve_loader(loader)  # fail here, with the loader's name, not once per worker
    competition = competition_id if isinstance(competition_id, Competition) else get_competition(competition_id)
    slots = list(devices or [device])
    if max_memory_bytes is None:
        max_memory_bytes = default_memory_cap(competition)
    outcomes: dict[str, ScoreOutcome] = {}
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}p{os.getpid()}-") as tmp:
        docs_path = save_documents(docs, Path(tmp) / "documents.npz")
        pending = deque(jobs)
        running: dict[int, _Running] = {}
        started = 0
        try:
            while pending or running:
                for slot, slot_device in enumerate(slots):
                    if slot not in running and pending:
                        job = pending.popleft()
                        started += 1
                        request = dict(
                            key=job.key, model_dir=str(job.model_dir), competition=competition,
                            docs_path=str(docs_path), result_path=str(Path(tmp) / f"result-{started}.json"),
                            device=slot_device, loader=loader, token_budget=token_budget,
                            device_memory_bytes=device_memory_bytes,
                            max_memory_bytes=max_memory_bytes if _is_cpu(slot_device) else None,
                            parent_pid=os.getpid(), time_limit_s=(job.timeout_s or timeout_s) + SELF_LIMIT_GRACE_S,
                        )
                        running[slot] = _start(ctx, job, request, job.timeout_s or timeout_s)
                _wait_for_any(running)
                for slot, run in list(running.items()):
                    outcome = _poll(run, len(docs))
                    if outcome is not None:
                        del running[slot]
                        outcomes[run.job.key] = outcome
                        log.info("scored %s: %s in %.1fs", run.job.key, outcome.error or "ok", outcome.seconds)
        finally:  # a second stop signal (KeyboardInterrupt) lands here: no worker outlives it or its temp dir
            _kill(list(running.values()))
    return {k: outcomes[k] for k in keys}


def default_memory_cap(competition: Competition) -> int:
    """A CPU worker's address-space cap: enough for any legal model of the competition, never above RAM."""
    wanted = CAP_BASE_BYTES + CAP_PER_MODEL_BYTE * int(competition.max_bytes)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return wanted
    return min(wanted, int(ram))


def remove_stale_temp_dirs(root: str | Path | None = None) -> list[Path]:
    """Delete `subnet-eval-*` directories left by killed runs: those whose owner process is gone.

    Directories of a live process (another validator on this machine) are left alone; the
    unnamed ones of older versions have no owner to ask and are removed once nothing has touched
    them for `UNNAMED_TEMP_AGE_S` (an older version's run may still be using a fresh one).
    """
    removed = []
    base = Path(root or tempfile.gettempdir())
    try:
        candidates = list(base.glob(f"{TEMP_PREFIX}*"))
    except OSError:
        return removed
    for path in candidates:
        owner = re.match(rf"{re.escape(TEMP_PREFIX)}p(\d+)-", path.name)
        if owner and (int(owner.group(1)) == os.getpid() or alive(int(owner.group(1)))):
            continue
        if not owner and _age_s(path) < UNNAMED_TEMP_AGE_S:
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    return removed


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _is_cpu(device: str) -> bool:
    return str(device).split(":")[0] == "cpu"


def _start(ctx, job: ScoreJob, request: dict, timeout_s: float) -> _Running:
    process = ctx.Process(target=worker_main, args=(request,), name=f"{WORKER_NAME_PREFIX}{job.key}", daemon=True)
    started = time.monotonic()
    process.start()
    return _Running(job, process, Path(request["result_path"]), started, started + timeout_s)


def _kill(runs: Sequence[_Running]) -> None:
    """End workers now (SIGKILL: they ignore SIGTERM) and reap them, before their temp dir goes."""
    for run in runs:
        if run.process.is_alive():
            run.process.kill()
    for run in runs:
        run.process.join(5)


def _wait_for_any(running: dict[int, _Running]) -> None:
    if not running:
        return
    until = min(r.deadline for r in running.values()) - time.monotonic()
    mp.connection.wait([r.process.sentinel for r in running.values()], timeout=max(0.0, min(until, 5.0)))


def _poll(run: _Running, n_docs: int) -> ScoreOutcome | None:
    """The outcome of a finished or overdue worker; None while it may still run."""
    process = run.process
    if process.is_alive():
        if time.monotonic() < run.deadline:
            return None
        process.kill()
        process.join(10)
        limit = run.deadline - run.started
        return ScoreOutcome(None, "timeout", f"killed after the {limit:.0f}s limit", time.monotonic() - run.started)
    process.join()
    seconds = time.monotonic() - run.started
    outcome = _read_result(run.result_path, seconds)
    if outcome is None:
        return _death_outcome(process.exitcode, seconds)
    if outcome.losses is not None and len(outcome.losses) != n_docs:
        return ScoreOutcome(None, "error", f"worker returned {len(outcome.losses)} losses for {n_docs} documents", seconds)
    return outcome


def _death_outcome(exitcode: int | None, seconds: float) -> ScoreOutcome:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else str(-exitcode)
        if -exitcode == signal.SIGKILL:
            return ScoreOutcome(None, "oom", "worker killed by SIGKILL (likely the out-of-memory killer)", seconds)
        return ScoreOutcome(None, "crashed", f"worker killed by {name}", seconds)
    return ScoreOutcome(None, "crashed", f"worker exited with code {exitcode} and no result", seconds)


def _read_result(path: Path, seconds: float) -> ScoreOutcome | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    losses = DocLosses.from_bytes(base64.b64decode(data["losses"])) if data.get("losses") else None
    return ScoreOutcome(losses, data["error"], data["detail"], seconds, data.get("tokens_per_s", 0.0),
                        bool(data.get("sliced", False)))
