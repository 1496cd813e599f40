"""Sharded training (FSDP2 over gloo): the same loss curve as one process, exact resume, a model validators load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from subnet.miner.config import TrainConfig
from subnet.miner.train import train
from tests.miner_run import (
    as_torchrun_rank,
    quiet,
    single_threaded_deterministic,
    spawn_ranks,
)

COMMON = dict(competition="tiny", steps=6, seq_len=32, micro_batch_size=2, warmup_steps=2, log_every=1,
              reference_documents=20, docs_per_chunk=20, device="cpu", deterministic=True, data_shards=2,
              lr=3e-3)


def _fsdp_worker(rank: int, world: int, port: int, out: str) -> None:
    as_torchrun_rank(rank, world, port)
    import torch.distributed as dist

    whole = train(TrainConfig(out_dir=f"{out}/whole", parallelism="fsdp", checkpoint_every=3, **COMMON), echo=quiet)
    resumed = train(TrainConfig(out_dir=f"{out}/resumed", parallelism="fsdp",
                                resume=f"{out}/whole/checkpoints/step_00000003", **COMMON), echo=quiet)
    Path(out, f"rank{rank}.json").write_text(json.dumps({
        "whole": whole.losses, "resumed": resumed.losses, "start": resumed.start_step,
        "model_dir": str(whole.model_dir) if whole.model_dir else None}))
    dist.destroy_process_group()


@pytest.mark.slow
def test_fsdp_two_processes_match_one_process_resume_exactly_and_export_a_valid_model(tmp_path):
    from subnet.competitions import get_competition
    from subnet.hub.loading import check_model_dir, load_model
    from subnet.miner.checkpoint import load_trainer_state

    spawn_ranks(_fsdp_worker, 2, str(tmp_path))
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["whole"] == r1["whole"] and len(r0["whole"]) == 6
    # One process over the same two data shards (grad_accum 2) computes the same steps: only the
    # order of floating-point reductions differs.
    with single_threaded_deterministic():
        single = train(TrainConfig(out_dir=str(tmp_path / "single"), grad_accum=2, **COMMON), echo=quiet)
    np.testing.assert_allclose(r0["whole"], single.losses, rtol=2e-5)
    # Resumed from the sharded checkpoint at step 3: bit for bit the uninterrupted curve.
    assert r0["start"] == 3 and r0["resumed"] == r0["whole"]
    state = load_trainer_state(tmp_path / "whole/checkpoints/step_00000003")
    assert state["sharded"] and state["optimizers"] == []
    assert any((tmp_path / "whole/checkpoints/step_00000003/dcp").glob("*.distcp"))
    # The consolidated export is the trained model, in the form validators accept.
    competition = get_competition("tiny")
    check_model_dir(Path(r0["model_dir"]), competition)
    exported = load_model(Path(r0["model_dir"]), competition, device="cpu", dtype=torch.float32)
    for (name, p), (_, q) in zip(exported.named_parameters(), single.model.named_parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


def test_data_shards_fix_the_data_whatever_the_process_count(tmp_path):
    from subnet.miner.data import ShardedStreams

    made = []
    streams = ShardedStreams(lambda shard, n: made.append((shard, n)) or _Counter(shard), shards=4, rank=1,
                             world_size=2)
    assert made == [(1, 4), (3, 4)]
    assert [streams.next_batch(1) for _ in range(4)] == [1, 3, 1, 3]
    with pytest.raises(ValueError, match="multiple"):
        ShardedStreams(lambda shard, n: _Counter(shard), shards=3, rank=0, world_size=2)
    with pytest.raises(ValueError, match="grad_accum"):
        train(TrainConfig(out_dir=str(tmp_path), grad_accum=1, **{**COMMON, "data_shards": 2}),
              echo=quiet)


class _Counter:
    def __init__(self, shard: int) -> None:
        self.shard = shard

    def next_batch(self, n: int) -> int:
        return self.shard
