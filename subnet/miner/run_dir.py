"""The rules of a training run's directory: one run per directory, resumable, stoppable at a step.

A fresh run refuses a directory that holds another run (mixing two runs' checkpoints and
metrics.jsonl made both unreadable); a resumed run drops the metrics logged after its checkpoint;
Ctrl-C or SIGTERM stops after the current step with a checkpoint that `--resume latest` continues.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import torch
import torch.distributed as dist

from subnet.commands.boundary import CommandError


class TrainingInterrupted(CommandError):
    """Training stopped on SIGINT/SIGTERM after checkpointing; `--resume latest` continues it exactly."""

    exit_code = 130

    def __init__(self, step: int, checkpoint: Path | None) -> None:
        super().__init__(f"training stopped at step {step}; checkpoint {checkpoint}; continue with --resume latest")
        self.step, self.checkpoint = step, checkpoint


def refuse_existing_run(out_dir: Path) -> None:
    """A fresh run must not mix its checkpoints and metrics into another run's directory."""
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise ValueError(f"--out-dir {out_dir} already holds a run; continue it with --resume latest, "
                         "or choose an empty --out-dir")


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metrics logged after the checkpoint being resumed: the resumed run logs those steps again."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if int(json.loads(line)["step"]) <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")


def stop_agreed(stop: threading.Event, env) -> bool:
    """Whether to stop before the next step; with several processes all stop at the same step."""
    if env.world_size == 1:
        return stop.is_set()
    flag = torch.tensor([1.0 if stop.is_set() else 0.0], device=env.device)
    dist.all_reduce(flag)
    return bool(flag.item() > 0)


RUN_RECORD = "run.json"


def write_run_record(out_dir: Path, config, competition_id: str, world_size: int, device: str,
                     resumed_at: int | None = None) -> Path:
    """`run.json`: what made this run, readable without the code (the config, the package version,
    the git commit, the command line), so a directory of results explains itself. A resume adds
    an entry to `resumes` instead of rewriting how the run began."""
    from subnet import __version__, git_commit

    path = out_dir / RUN_RECORD
    now = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "version": __version__,
           "commit": git_commit(), "command": list(sys.argv), "world_size": world_size, "device": device}
    record = _read_json(path) if resumed_at is not None else None
    if record is None:
        record = {"competition": competition_id, "config": config.to_dict(), "started": now, "resumes": []}
    else:
        record.setdefault("resumes", []).append({**now, "step": resumed_at, "config": config.to_dict()})
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
