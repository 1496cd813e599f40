"""Shared by the miner tests: one real training run of the tiny competition, trained once per session.

Not a conftest (the miner owns only tests/test_miner*.py); the run is cached at module level, so
every test module that imports it reuses the same directory. Named without `test_` because it holds no tests of its own.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import shutil
import tempfile
from pathlib import Path

import torch

# 200 steps of 8 x 64 tokens: about 5 s on one CPU thread, enough for the loss to fall far.
STEPS = 200
CHECKPOINT_EVERY = 5


def quiet(_: str) -> None:
    pass


@contextlib.contextmanager
def single_threaded_deterministic():
    """One CPU thread and deterministic kernels for the duration, restored afterwards: both are
    process-wide settings, and other tests in the same pytest process must not inherit them."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


@functools.lru_cache(maxsize=None)
def trained_run():
    """(TrainResult, out_dir) of a tiny run from scratch with a checkpoint every 5 steps."""
    from subnet.miner.config import TrainConfig
    from subnet.miner.train import train

    out = Path(tempfile.mkdtemp(prefix="miner-run-"))
    atexit.register(shutil.rmtree, out, True)
    config = TrainConfig(
        competition="tiny", out_dir=str(out), steps=STEPS, seq_len=64, micro_batch_size=8, lr=3e-3,
        warmup_steps=20, log_every=50, checkpoint_every=CHECKPOINT_EVERY, keep_checkpoints=0,
        reference_documents=160, docs_per_chunk=100, device="cpu",
    )
    with single_threaded_deterministic():
        return train(config, echo=quiet), out


def as_torchrun_rank(rank: int, world: int, port: int) -> None:
    """Inside a spawned worker: the environment torchrun would give rank `rank` of `world`, one thread."""
    import os

    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)


def spawn_ranks(worker, world: int, *args) -> None:
    """Run `worker(rank, world, port, *args)` in `world` processes that rendezvous on a free loopback port."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(world, port, *args), nprocs=world, join=True)

