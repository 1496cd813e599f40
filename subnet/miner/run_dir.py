"""The rules of a training run's directory: one run per directory, resumable, stoppable at a step.

A fresh run refuses a directory that holds another run (mixing two runs' checkpoints and
metrics.jsonl made both unreadable); a resumed run drops the metrics logged after its checkpoint;
Ctrl-C or SIGTERM stops after the current step with a checkpoint that `--resume latest` continues.
"""

from __future__ import annotations

import json
import threading
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
