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
import importlib
import json
import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from subnet.competitions import Competition, get_competition
from subnet.data.types import TokenizedDocuments
from subnet.eval.docfile import load_documents, save_documents
from subnet.eval.types import DocLosses, ScoreOutcome
from subnet.pids import alive

log = logging.getLogger(__name__)

DETAIL_LIMIT = 2_000
TEMP_PREFIX = "subnet-eval-"
WORKER_NAME_PREFIX = "score-"
# The worker's own time limit runs this much past the parent's, so the parent normally reports 'timeout'.
SELF_LIMIT_GRACE_S = 5.0
PARENT_POLL_S = 0.25
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
    _resolve(loader)  # fail here, with the loader's name, not once per worker
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
    process = ctx.Process(target=_worker_main, args=(request,), name=f"{WORKER_NAME_PREFIX}{job.key}", daemon=True)
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


# ---------------------------------------------------------------- inside the worker process


def _worker_main(request: dict) -> None:
    # A stop is the daemon's to handle (Ctrl-C reaches the whole process group, systemd may signal the
    # whole cgroup): the model in progress finishes, and the worker ends with its parent or its deadline.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if request.get("parent_pid"):
        _die_with_parent(int(request["parent_pid"]))
    if request.get("time_limit_s"):
        _enforce_time_limit(float(request["time_limit_s"]))
    if request.get("max_memory_bytes"):
        import resource

        limit = int(request["max_memory_bytes"])
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    result = _score_in_worker(request)
    tmp = Path(request["result_path"] + ".part")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, request["result_path"])


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL this worker when the daemon dies: by the kernel where it can, by polling otherwise."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the poll below still applies
        pass
    if os.getppid() != parent_pid:  # the parent died before the request above took effect
        os.kill(os.getpid(), signal.SIGKILL)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent_pid:
                os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _enforce_time_limit(limit_s: float) -> None:
    """The worker's own deadline: a hung model ends even when the parent cannot enforce its limit."""
    def expire() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    timer = threading.Timer(limit_s, expire)
    timer.daemon = True
    timer.start()


def _score_in_worker(request: dict) -> dict:
    """Load and score one model; every failure becomes an error code (see the module docstring)."""
    from subnet.hub.errors import ModelRejected

    def failed(code: str, exc: BaseException) -> dict:
        detail = f"{type(exc).__name__}: {exc}"
        if code == "error":
            detail += "\n" + "".join(traceback.format_exception(exc)[-3:])
        return {"error": code, "detail": detail[:DETAIL_LIMIT], "losses": None}

    cap = request.get("max_memory_bytes")

    def out_of_memory(exc: BaseException) -> dict:
        if cap:
            return {"error": "memory_limit", "losses": None,
                    "detail": f"over the {cap / 1024**3:.1f} GiB memory cap of a CPU worker: "
                              f"{type(exc).__name__}: {exc}"[:DETAIL_LIMIT]}
        if "cuda" in str(request.get("device", "")):
            return {"error": "memory_limit", "losses": None,
                    "detail": f"over the device's memory ({request['device']}): {type(exc).__name__}: {exc}"
                              [:DETAIL_LIMIT]}
        return failed("oom", exc)

    try:
        import torch

        from subnet.devices import prepare_device
        from subnet.eval.engine import UnsupportedModel
        from subnet.eval.free_tokens import score_documents
        from subnet.eval.sliced import compute_losses_sliced, open_sliced
    except Exception as exc:  # noqa: BLE001 - e.g. the address-space limit is too small for torch
        return out_of_memory(exc) if isinstance(exc, MemoryError) else failed("error", exc)
    try:
        device = prepare_device(request["device"])  # indexed, selected, reproducible numerics
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        try:
            docs = load_documents(request["docs_path"])
        except Exception as exc:  # noqa: BLE001 - our documents file, not the model: no verdict on the miner
            return failed("worker_error", exc)
        sliced = open_sliced(request["model_dir"], request["competition"], device, dtype,
                             request.get("device_memory_bytes"))
        started = time.monotonic()  # sliced: reading the weights, slice by slice, is part of scoring
        if sliced is not None:  # too large for the device (the loader is not used: SlicedModel reads the files)
            losses = compute_losses_sliced(sliced, docs, token_budget=request.get("token_budget"))
        else:
            model = _resolve(request["loader"])(request["model_dir"], request["competition"], device=str(device),
                                                dtype=dtype)
            generation = _generation_failure(model, docs, request["competition"], device)
            if generation is not None:
                return generation
            started = time.monotonic()
            losses = score_documents(model, request["model_dir"], docs, request["competition"].max_seq_len,
                                     device=device, token_budget=request.get("token_budget"))
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.monotonic() - started
        return {
            "error": "",
            "detail": "",
            "losses": base64.b64encode(losses.to_bytes()).decode(),
            "tokens_per_s": float(losses.n_tokens.sum()) / max(elapsed, 1e-9),
            "sliced": sliced is not None,
        }
    except ModelRejected as exc:
        return {"error": f"rejected:{exc.reason}", "detail": exc.detail[:DETAIL_LIMIT], "losses": None}
    except (MemoryError, torch.OutOfMemoryError) as exc:
        return out_of_memory(exc)
    except UnsupportedModel as exc:
        return failed("unsupported", exc)
    except Exception as exc:  # noqa: BLE001 - a miner's model may fail in any way; it costs that model only
        return failed("error", exc)


def _generation_failure(model, docs, competition: Competition, device) -> dict | None:
    """The worker's result for a model the competition's generation check fails; None when it passes
    or the check is off. Run before scoring: it costs a few forward passes, scoring thousands."""
    if not competition.generation_check.enabled:
        return None
    from subnet.eval.generation import check_generation

    verdict = check_generation(model, docs, competition.generation_check, device)
    if not verdict.failure:
        return None
    return {"error": verdict.error, "detail": verdict.detail[:DETAIL_LIMIT], "losses": None}


def _resolve(path: str):
    """The callable named by 'package.module:attribute'."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"loader must look like 'package.module:function', got {path!r}")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import loader {path!r}: {exc}") from exc
