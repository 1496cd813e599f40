"""Checkpoints that resume a run exactly, and model directories a validator accepts.

A checkpoint is a directory `out_dir/checkpoints/step_00000100/` holding
- `model/`: the weights (safetensors) and tokenizer files, exactly what `upload` publishes, so any
  checkpoint can be benchmarked or uploaded as it is;
- `trainer.pt`: everything else a resumed run needs to continue bit for bit: step, optimizer
  states, the learning-rate schedule's position (the step), each rank's RNG states and data
  position, the loss history and the run's config. It holds only tensors and plain Python values,
  so it loads with `torch.load(weights_only=True)`: no pickled code.
A checkpoint is written to a temporary name and renamed, so a crash mid-write leaves the previous
checkpoint as the newest complete one.
"""

from __future__ import annotations

import io
import os
import random
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from subnet.hub.store import ALLOWED_SUFFIXES

TRAINER_STATE = "trainer.pt"
MODEL_SUBDIR = "model"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model inside DDP and torch.compile wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def save_model_dir(model: torch.nn.Module, tokenizer, directory: Path) -> Path:
    """save_pretrained (safetensors; the only format transformers 5 writes) plus the tokenizer files.

    Files validators would not download (e.g. a chat template saved as .jinja) are removed, so
    the directory hash a miner commits is the hash of what validators fetch.
    """
    from transformers.utils import logging as hf_logging

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a per-save shard bar would drown the training log
    try:
        unwrap(model).save_pretrained(directory)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    for path in list(directory.rglob("*")):
        if path.is_file() and path.suffix.lower() not in ALLOWED_SUFFIXES:
            path.unlink()
    if not any(directory.glob("*.safetensors")):
        raise RuntimeError(f"save_pretrained wrote no .safetensors file into {directory}")
    return directory


# ----------------------------------------------------------------------------- RNG


def capture_rng() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(np.asarray(keys).copy()), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- checkpoints


def checkpoint_root(out_dir: str | Path) -> Path:
    return Path(out_dir) / "checkpoints"


def step_dir(out_dir: str | Path, step: int) -> Path:
    return checkpoint_root(out_dir) / f"step_{step:08d}"


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = checkpoint_root(out_dir)
    if not root.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := _STEP_DIR.match(p.name)) and (p / TRAINER_STATE).is_file() and (p / MODEL_SUBDIR).is_dir()
    ]
    return [p for _, p in sorted(found)]


def resolve_resume(resume: str, out_dir: str | Path) -> Path:
    """'latest' -> the newest complete checkpoint in out_dir; else the named checkpoint directory."""
    if resume == "latest":
        found = list_checkpoints(out_dir)
        if not found:
            raise FileNotFoundError(f"--resume latest: no complete checkpoint under {checkpoint_root(out_dir)}")
        return found[-1]
    path = Path(resume)
    if not (path / TRAINER_STATE).is_file() or not (path / MODEL_SUBDIR).is_dir():
        raise FileNotFoundError(f"{path} is not a checkpoint (expected {TRAINER_STATE} and {MODEL_SUBDIR}/ inside)")
    return path


def staging_dir(out_dir: str | Path, step: int) -> Path:
    """Where every rank of a sharded run writes its shard before rank 0 completes the checkpoint.

    The name is a function of the step alone, so all ranks agree on it without talking.
    """
    final = step_dir(out_dir, step)
    return final.parent / f".tmp-{final.name}-shards"


def save_checkpoint(out_dir: str | Path, step: int, model: torch.nn.Module, tokenizer, state: dict[str, Any],
                    keep: int = 0, staged: Path | None = None) -> Path:
    """Write a checkpoint atomically and prune old ones (keeping the newest `keep`; 0 keeps all).

    `staged` is a scratch directory other ranks already wrote into (a sharded run's DCP shards).
    """
    final = step_dir(out_dir, step)
    scratch = staged or final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    scratch.mkdir(parents=True, exist_ok=staged is not None)
    try:
        save_model_dir(model, tokenizer, scratch / MODEL_SUBDIR)
        torch.save(state, scratch / TRAINER_STATE)
        if final.exists():
            shutil.rmtree(final)
        os.replace(scratch, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if keep > 0:
        for old in list_checkpoints(out_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(Path(checkpoint) / TRAINER_STATE, map_location="cpu", weights_only=True)


def write_checkpoint(out_dir: Path, step: int, model, tokenizer, optimizers, stream, losses: list[float], config,
                     env, mode: str = "none") -> Path | None:
    """Gather every rank's RNG and data position, then rank 0 writes. Returns the path on rank 0.

    A sharded run also writes every rank's shard of weights and optimizer states (DCP) and a
    consolidated model; its trainer state then holds no optimizer state of its own."""
    mine = {"rng": capture_rng(), "data": stream.state_dict()}
    ranks = [mine]
    if env.world_size > 1:
        # Tensors inside all_gather_object do not survive the trip (torch pickles their storages
        # untyped), so each rank sends its state as torch.save bytes.
        buffer = io.BytesIO()
        torch.save(mine, buffer)
        gathered: list = [None] * env.world_size
        dist.all_gather_object(gathered, buffer.getvalue())
        ranks = [torch.load(io.BytesIO(blob), weights_only=True) for blob in gathered]
    path, staged, plain = None, None, model
    if mode == "fsdp":
        staged = staging_dir(out_dir, step)
        from subnet.miner import sharding

        sharding.save_sharded_state(model, optimizers, staged / sharding.DCP_SUBDIR)
        plain = sharding.consolidated_model(model)
    if env.is_main:
        state = {
            "step": step, "losses": list(losses), "config": config.to_dict(), "ranks": ranks,
            "optimizers": [] if mode == "fsdp" else [opt.state_dict() for opt in optimizers],
            "sharded": mode == "fsdp",
        }
        path = save_checkpoint(out_dir, step, plain, tokenizer, state, keep=config.keep_checkpoints, staged=staged)
    if env.world_size > 1:
        dist.barrier()
    return path
