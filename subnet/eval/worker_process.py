"""What runs inside a scoring worker process: limits on itself, then load, check and score one model.

`subnet.eval.worker` starts this module's `worker_main` in a fresh 'spawn' process per model and
reads back the JSON result it writes; every way a model can fail becomes an error code here (the
codes are listed in `subnet.eval.worker`). Kept apart so the parent's scheduling and the child's
scoring can each be read alone.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import signal
import threading
import time
import traceback
from pathlib import Path

from subnet.competitions import Competition
from subnet.eval.docfile import load_documents

DETAIL_LIMIT = 2_000
PARENT_POLL_S = 0.25


def worker_main(request: dict) -> None:
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
    result = score_in_worker(request)
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


def score_in_worker(request: dict) -> dict:
    """Load and score one model; every failure becomes an error code (see `subnet.eval.worker`)."""
    from subnet.hub.errors import ModelRejected

    try:
        import torch

        from subnet.eval.engine import UnsupportedModel
    except Exception as exc:  # noqa: BLE001 - e.g. the address-space limit is too small for torch
        return _out_of_memory(request, exc) if isinstance(exc, MemoryError) else _failed("error", exc)
    try:
        return _score(request)
    except ModelRejected as exc:
        return {"error": f"rejected:{exc.reason}", "detail": exc.detail[:DETAIL_LIMIT], "losses": None}
    except (MemoryError, torch.OutOfMemoryError) as exc:
        return _out_of_memory(request, exc)
    except UnsupportedModel as exc:
        return _failed("unsupported", exc)
    except Exception as exc:  # noqa: BLE001 - a miner's model may fail in any way; it costs that model only
        return _failed("error", exc)


def _score(request: dict) -> dict:
    """The scored result, or the failure of a check that ends the model before scoring."""
    import torch

    from subnet.devices import prepare_device
    from subnet.eval.free_tokens import score_documents
    from subnet.eval.sliced import compute_losses_sliced, open_sliced

    device = prepare_device(request["device"])  # indexed, selected, reproducible numerics
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        docs = load_documents(request["docs_path"])
    except Exception as exc:  # noqa: BLE001 - our documents file, not the model: no verdict on the miner
        return _failed("worker_error", exc)
    competition = request["competition"]
    sliced = open_sliced(request["model_dir"], competition, device, dtype, request.get("device_memory_bytes"))
    started = time.monotonic()  # sliced: reading the weights, slice by slice, is part of scoring
    if sliced is not None:  # too large for the device (the loader is not used: SlicedModel reads the files)
        losses = compute_losses_sliced(sliced, docs, token_budget=request.get("token_budget"))
    else:
        model = resolve_loader(request["loader"])(request["model_dir"], competition, device=str(device), dtype=dtype)
        generation = generation_failure(model, docs, competition, device)
        if generation is not None:
            return generation
        started = time.monotonic()
        losses = score_documents(model, request["model_dir"], docs, competition.max_seq_len,
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


def _failed(code: str, exc: BaseException) -> dict:
    detail = f"{type(exc).__name__}: {exc}"
    if code == "error":
        detail += "\n" + "".join(traceback.format_exception(exc)[-3:])
    return {"error": code, "detail": detail[:DETAIL_LIMIT], "losses": None}


def _out_of_memory(request: dict, exc: BaseException) -> dict:
    """'memory_limit' when a cap of ours (the CPU worker's or the device's memory) was hit; 'oom' otherwise."""
    cap = request.get("max_memory_bytes")
    if cap:
        return {"error": "memory_limit", "losses": None,
                "detail": f"over the {cap / 1024**3:.1f} GiB memory cap of a CPU worker: "
                          f"{type(exc).__name__}: {exc}"[:DETAIL_LIMIT]}
    if "cuda" in str(request.get("device", "")):
        return {"error": "memory_limit", "losses": None,
                "detail": f"over the device's memory ({request['device']}): {type(exc).__name__}: {exc}"
                          [:DETAIL_LIMIT]}
    return _failed("oom", exc)


def generation_failure(model, docs, competition: Competition, device) -> dict | None:
    """The worker's result for a model the competition's generation check fails; None when it passes
    or the check is off. Run before scoring: it costs a few forward passes, scoring thousands."""
    if not competition.generation_check.enabled:
        return None
    from subnet.eval.generation import check_generation

    verdict = check_generation(model, docs, competition.generation_check, device)
    if not verdict.failure:
        return None
    return {"error": verdict.error, "detail": verdict.detail[:DETAIL_LIMIT], "losses": None}


def resolve_loader(path: str):
    """The callable named by 'package.module:attribute'."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"loader must look like 'package.module:function', got {path!r}")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import loader {path!r}: {exc}") from exc
