"""Train a causal language model for a competition: one loop, read top to bottom.

`train(config)` is the whole story, in order: set up (distributed, tokenizer, model, optimizers,
data), optionally resume, then step: set the learning rate, accumulate gradients over
micro-batches, clip, update, report progress (a bar on a terminal, log lines elsewhere: see
subnet/miner/train_progress.py), checkpoint; finally save the model as validators load it.
Every hyperparameter lives in `TrainConfig` (subnet/miner/config.py). The helpers below the loop
are small and have one job each.

Multi-GPU: launch with `torchrun --standalone --nproc_per_node N -m subnet miner train ...`. With
WORLD_SIZE > 1 each process joins the process group (nccl on CUDA, gloo on CPU), replicates the
model with DistributedDataParallel or shards it with FSDP2 (subnet/miner/sharding.py: chosen by
memory) and reads its own shards of the data stream; rank 0 writes the trainer state and the final
model, every rank its shard of a sharded checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from subnet.competitions import Competition, get_competition
from subnet.miner import sharding
from subnet.miner.checkpoint import (
    MODEL_SUBDIR,
    load_trainer_state,
    resolve_resume,
    restore_rng,
    save_model_dir,
    write_checkpoint,
)
from subnet.miner.config import TrainConfig
from subnet.miner.data import (
    HeldOut,
    PackedStream,
    ShardedStreams,
    make_training_source,
    reference_documents,
)
from subnet.miner.model_configs import build_model, count_parameters, reference_config
from subnet.miner.optimizers import fused_kwargs, lr_factor, make_optimizers, split_parameters  # noqa: F401
from subnet.miner.processes import Distributed, setup_distributed
from subnet.miner.train_progress import TrainProgress, wants_bar
from subnet.miner.run_dir import (
    TrainingInterrupted,
    refuse_existing_run,
    stop_agreed,
    truncate_metrics,
    write_run_record,
)
from subnet.miner.streaming import StreamingPackedStream, is_stream
from subnet.miner.throughput import Throughput, guess_peak_flops  # noqa: F401
from subnet.signals import stop_requested_on_signals

log = logging.getLogger(__name__)

FINAL_MODEL_SUBDIR = "model"
METRICS_FILE = "metrics.jsonl"


@dataclass
class TrainResult:
    out_dir: Path
    model_dir: Path | None  # final model (rank 0 only)
    losses: list[float]  # training loss of every step from step 1 (resumed runs include the earlier steps)
    start_step: int  # first step this call ran (0 for a fresh run)
    steps: int
    tokens_per_s: float
    n_params: int
    mfu: float | None = None
    checkpoints: list[Path] = field(default_factory=list)
    model: torch.nn.Module | None = None  # the trained model (unwrapped), for callers that go on using it


@dataclass
class _Run:
    """What the loop needs, built once by `_set_up`; the loop advances `step` and `losses`."""

    config: TrainConfig
    env: Distributed
    competition: Competition
    tokenizer: object
    out_dir: Path
    model: torch.nn.Module  # the plain model (unwrapped): checkpoints and the final save
    train_model: torch.nn.Module  # what the loop calls: wrapped for DDP/FSDP, maybe compiled
    optimizers: list
    stream: ShardedStreams
    mode: str  # none | ddp | fsdp
    n_params: int
    tokens_per_step: int
    peak_flops: float
    step: int = 0
    losses: list[float] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)


def train(config: TrainConfig, *, chain=None, store=None, echo: Callable[[str], None] | None = None) -> TrainResult:
    """Messages go to `echo` (default: stderr, so that stdout stays free for a command's result).
    Passing one also keeps progress as log lines under config.progress="auto"; otherwise a terminal
    gets a progress bar (subnet.miner.train_progress)."""
    show_bar = wants_bar(config.progress, caller_echo=echo is not None)
    echo = _to_stderr if echo is None else echo
    run = _set_up(config, chain, store, echo)
    start_step = run.step
    if run.env.is_main:
        write_run_record(run.out_dir, config, run.competition.id, run.env.world_size, str(run.env.device),
                         resumed_at=start_step if config.resume else None)
        echo(f"training {type(run.model).__name__} ({run.n_params:,} parameters) for {run.competition.id} on "
             f"{run.env.device} x{run.env.world_size} ({run.mode}): {config.steps} steps of "
             f"{run.tokens_per_step:,} tokens")
    timer = _loop(run, show_bar, echo)
    tokens_per_s, mfu = timer.tokens_per_s(), timer.mfu(run.n_params, run.peak_flops)  # before the saves below
    final_ckpt = _checkpoint(run)
    if run.step < config.steps:  # stopped by a signal: the checkpoint is the result
        raise TrainingInterrupted(run.step, final_ckpt)
    model_dir, model = _save_final_model(run, echo)
    return TrainResult(run.out_dir, model_dir, run.losses, start_step, run.step, tokens_per_s, run.n_params, mfu,
                       run.checkpoints, model)


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _set_up(config: TrainConfig, chain, store, echo: Callable[[str], None]) -> _Run:
    """Distributed, tokenizer, model, optimizers and data; a resumed run's state restored."""
    env = setup_distributed(config.device)
    if config.deterministic:
        torch.use_deterministic_algorithms(True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    competition = get_competition(config.competition)
    from subnet.data.tokenizer import load_tokenizer

    if config.tokenizer and not competition.free_tokenizer:
        raise ValueError(f"competition {competition.id} scores every model with its tokenizer "
                         f"{competition.tokenizer}; --tokenizer is only for competitions with free tokenizers")
    tokenizer = load_tokenizer(config.tokenizer or competition.tokenizer)
    seq_len = config.seq_len or competition.max_seq_len
    out_dir = Path(config.out_dir)
    if not config.resume and env.is_main:  # other ranks may find rank 0's first files already there
        refuse_existing_run(out_dir)
    if env.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    resume_from = resolve_resume(config.resume, out_dir) if config.resume else None
    saved = load_trainer_state(resume_from) if resume_from else None
    if saved is not None:
        check_resumable(config, saved, env.world_size)

    seed_everything(config.seed)  # same seed on every rank: identical initial weights
    model = initial_model(config, competition, tokenizer, env.device, resume_from, chain, store)
    if seq_len > model.config.max_position_embeddings:
        raise ValueError(f"seq_len {seq_len} exceeds the model's max_position_embeddings "
                         f"{model.config.max_position_embeddings}")
    model.to(env.device).train()
    n_params = count_parameters(model)
    mode = sharding.choose_parallelism(config.parallelism, env.world_size, n_params, env.device)
    if mode == "fsdp" and config.optimizer == "muon":
        raise ValueError("--optimizer muon is not supported with FSDP sharding; use adamw or --parallelism ddp")
    train_model = sharding.wrap(model, mode, env.device, config.bf16, config.activation_checkpointing)
    optimizers = make_optimizers(model, config, env.device, sharded=mode == "fsdp")
    stream = _data_stream(config, competition, tokenizer, seq_len, env)
    run = _Run(config, env, competition, tokenizer, out_dir, model, train_model, optimizers, stream, mode, n_params,
               tokens_per_step=config.micro_batch_size * seq_len * config.grad_accum * env.world_size,
               peak_flops=config.peak_flops or guess_peak_flops(env.device))
    if saved is not None:
        _restore(run, saved, resume_from, echo)
    if config.compile:
        run.train_model = torch.compile(run.train_model)
    return run


def _data_stream(config: TrainConfig, competition: Competition, tokenizer, seq_len: int,
                 env: Distributed) -> ShardedStreams:
    """This process's shards of the training stream. A streamed dataset trains; the held-out
    documents still come from the competition's own source, which is what `benchmark` scores on."""
    streamed = is_stream(config.dataset)
    source = make_training_source(competition, "" if streamed else config.dataset)
    held_out = HeldOut.of(reference_documents(source, config.reference_documents or competition.sampling.max_documents))
    shards = config.data_shards or env.world_size
    if config.grad_accum % (shards // env.world_size or 1):
        raise ValueError(f"grad_accum ({config.grad_accum}) must be a multiple of the data shards per process "
                         f"({shards} shards / {env.world_size} processes)")
    return ShardedStreams(
        lambda shard, n: StreamingPackedStream(config.dataset, tokenizer, seq_len, seed=config.seed, held_out=held_out,
                                               rank=shard, world_size=n, docs_per_chunk=config.docs_per_chunk)
        if streamed else
        PackedStream(source, tokenizer, seq_len, seed=config.seed, held_out=held_out, rank=shard, world_size=n,
                     docs_per_chunk=config.docs_per_chunk),
        shards, env.rank, env.world_size)


def _restore(run: _Run, saved: dict, resume_from: Path, echo: Callable[[str], None]) -> None:
    """Optimizer states, this rank's data position and RNG, and the losses so far, from a checkpoint."""
    run.step, run.losses = int(saved["step"]), list(saved["losses"])
    if saved.get("sharded"):
        sharding.load_sharded_state(run.train_model, run.optimizers, resume_from / sharding.DCP_SUBDIR)
    else:
        for opt, state in zip(run.optimizers, saved["optimizers"], strict=True):
            opt.load_state_dict(state)
    mine = saved["ranks"][run.env.rank]
    run.stream.load_state_dict(mine["data"])
    restore_rng(mine["rng"])
    if run.env.is_main:
        truncate_metrics(run.out_dir / METRICS_FILE, run.step)
        echo(f"resumed from {resume_from} at step {run.step}")


def _loop(run: _Run, show_bar: bool, echo: Callable[[str], None]) -> Throughput:
    """Step until `config.steps` or a stop signal: progress at log steps, checkpoints on schedule."""
    config, env = run.config, run.env
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if env.device.type == "cuda" and config.bf16
                else contextlib.nullcontext())
    pending: list[torch.Tensor] = []  # per-step losses still on the device (read at log time: no sync per step)
    timer, start_step = Throughput(), run.step
    interrupted = threading.Event()
    with stop_requested_on_signals(interrupted, echo), \
            TrainProgress(bar=show_bar and env.is_main, total=config.steps, done=run.step, echo=echo) as progress:
        while run.step < config.steps and not stop_agreed(interrupted, env):
            lr_scale = lr_factor(run.step, config.warmup_steps, config.steps, config.min_lr_ratio)
            pending.append(_one_step(run, lr_scale, autocast))
            run.step += 1
            timer.add(run.tokens_per_step, first=(run.step == start_step + 1), device=env.device)
            progress.advance()
            if run.step % config.log_every == 0 or run.step == config.steps:
                _collect(run, pending)
                if not math.isfinite(run.losses[-1]):
                    raise RuntimeError(f"training loss is {run.losses[-1]} at step {run.step}; "
                                       "lower --lr or raise --warmup-steps")
                if env.is_main:
                    report_progress(progress, run.out_dir, run.step, config.steps, run.losses[-1],
                                    lr_scale * config.lr, timer, run.n_params, run.peak_flops)
            if config.checkpoint_every and run.step % config.checkpoint_every == 0 and run.step < config.steps:
                _collect(run, pending)
                _checkpoint(run)
    _collect(run, pending)
    return timer


def _one_step(run: _Run, lr_scale: float, autocast) -> torch.Tensor:
    """One optimizer step over `grad_accum` micro-batches; returns the step's loss, still on the device."""
    config, env = run.config, run.env
    for opt in run.optimizers:
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * lr_scale
    step_loss = torch.zeros((), device=env.device)
    for micro in range(config.grad_accum):
        rows = run.stream.next_batch(config.micro_batch_size).to(env.device, non_blocking=True)
        with sharding.gradient_sync(run.train_model, run.mode, micro == config.grad_accum - 1):
            with autocast:
                loss = next_token_loss(run.train_model, rows) / config.grad_accum
            loss.backward()
        step_loss += loss.detach()
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), config.grad_clip)
    for opt in run.optimizers:
        opt.step()
    for opt in run.optimizers:
        opt.zero_grad(set_to_none=True)
    if env.world_size > 1:
        dist.all_reduce(step_loss)  # SUM (gloo has no AVG); divided below
        step_loss /= env.world_size
    return step_loss


def _collect(run: _Run, pending: list[torch.Tensor]) -> None:
    run.losses.extend(t.item() for t in pending)
    pending.clear()


def _checkpoint(run: _Run) -> Path | None:
    path = write_checkpoint(run.out_dir, run.step, run.model, run.tokenizer, run.optimizers, run.stream, run.losses,
                      run.config, run.env, run.mode)
    if path is not None:
        run.checkpoints.append(path)
    return path


def _save_final_model(run: _Run, echo: Callable[[str], None]) -> tuple[Path | None, torch.nn.Module | None]:
    """The plain model validators load, saved by rank 0 (and checked as validators would); returns
    its directory and the model (None off rank 0 when sharded)."""
    model_dir = None
    model = sharding.consolidated_model(run.model) if run.mode == "fsdp" else run.model  # None off rank 0
    if run.env.is_main:
        model_dir = save_model_dir(model, run.tokenizer, run.out_dir / FINAL_MODEL_SUBDIR)
        warn_if_rejected(model_dir, run.competition, echo)
        echo(f"saved {model_dir}")
    if run.env.world_size > 1:
        dist.barrier()
    return model_dir, model


# ----------------------------------------------------------------------------- the model


def next_token_loss(model: torch.nn.Module, rows: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting rows[:, 1:] from rows[:, :-1], computed in float32."""
    logits = model(input_ids=rows[:, :-1], use_cache=False).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), rows[:, 1:].reshape(-1))


def initial_model(config: TrainConfig, competition: Competition, tokenizer, device: torch.device,
                  resume_from: Path | None, chain, store) -> torch.nn.Module:
    """Where training starts: a checkpoint, the reference config, a model directory, or the chain's best."""
    from subnet.hub.loading import load_model

    def load(directory: Path) -> torch.nn.Module:
        return load_model(directory, competition, device=str(device), dtype=torch.float32).train()

    if resume_from is not None:
        return load(resume_from / MODEL_SUBDIR)
    if config.init == "scratch":
        return build_model(reference_config(competition, tokenizer), competition)
    if config.init == "chain":
        from subnet.miner.chain_models import best_model_on_chain

        if chain is None or store is None:
            raise ValueError("--init chain needs a chain (--network) and a store (--store)")
        found = best_model_on_chain(chain, store, competition, Path(config.out_dir) / "incumbents")
        if found is None:
            raise ValueError(f"no valid {competition.id} model on chain to start from")
        return load(found.path)
    directory = Path(config.init)
    if not directory.is_dir():
        raise ValueError(f"--init {config.init!r} is not 'scratch', 'chain' or a model directory")
    return load(directory)


def warn_if_rejected(model_dir: Path, competition: Competition, echo: Callable[[str], None]) -> None:
    from subnet.hub.errors import ModelRejected
    from subnet.hub.loading import check_model_dir

    try:
        check_model_dir(model_dir, competition)
    except ModelRejected as e:
        echo(f"WARNING: validators would reject {model_dir}: {e}")


# ----------------------------------------------------------------------------- checkpoints


def check_resumable(config: TrainConfig, saved: dict, world_size: int) -> None:
    changed = config.changes_breaking_resume(saved["config"])
    if changed:
        raise ValueError(f"cannot resume exactly: the config changed in {changed}; "
                         "start a new run (--init the checkpoint's model/ directory) instead")
    if len(saved["ranks"]) != world_size:
        raise ValueError(f"checkpoint was written by {len(saved['ranks'])} process(es), this run has {world_size}")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- progress


def report_progress(progress: TrainProgress, out_dir: Path, step: int, steps: int, loss: float, lr: float,
                    timer: Throughput, n_params: int, peak: float) -> None:
    """Show the step's numbers (bar or log line) and append them to metrics.jsonl either way."""
    tps = timer.tokens_per_s()
    mfu = timer.mfu(n_params, peak)
    progress.show(step, steps, loss, lr, tps, mfu)
    record = {"step": step, "loss": loss, "lr": lr, "tokens_per_s": tps, "mfu": mfu, "time": time.time()}
    with open(out_dir / METRICS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
