"""Training data streamed with `datasets` from parquet files: deterministic per shard, resumable, held-out free."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from subnet.data.synthetic import SyntheticSource
from subnet.data.tokenizer import load_tokenizer
from subnet.miner.data import HeldOut, labelled_seed
from subnet.miner.streaming import StreamingPackedStream


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory):
    """Four parquet files of 40 documents each, in FineWeb's columns (text, id)."""
    root = tmp_path_factory.mktemp("stream")
    docs = SyntheticSource().fetch_round(labelled_seed("stream-test"), 2, 100, 160).documents
    for f in range(4):
        part = docs[40 * f:40 * (f + 1)]
        table = pa.table({"text": [d.text[:120] for d in part], "id": [f"<urn:uuid:{f}-{i}>" for i in range(len(part))]})
        pq.write_table(table, root / f"part-{f:02d}.parquet", row_group_size=10)
    return root, docs


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("builtin:tiny")


def _stream(parquet_dir, tokenizer, **kw):
    root, _ = parquet_dir
    return StreamingPackedStream(f"stream:{root}", tokenizer, 32, seed=0, docs_per_chunk=7, **kw)


def test_shards_are_deterministic_and_disjoint(parquet_dir, tokenizer):
    a0 = _stream(parquet_dir, tokenizer, rank=0, world_size=2)
    again = _stream(parquet_dir, tokenizer, rank=0, world_size=2)
    a1 = _stream(parquet_dir, tokenizer, rank=1, world_size=2)
    first, second = a0.next_batch(6), again.next_batch(6)
    assert torch.equal(first, second)
    assert not torch.equal(first, a1.next_batch(6))


def test_resumes_exactly_mid_chunk_and_across_epochs(parquet_dir, tokenizer):
    whole = _stream(parquet_dir, tokenizer)
    half = _stream(parquet_dir, tokenizer)
    for _ in range(5):
        half.next_batch(4)
    state = half.state_dict()
    resumed = _stream(parquet_dir, tokenizer)
    resumed.load_state_dict(state)
    expected = [whole.next_batch(4) for _ in range(60)][5:]  # 60 x 4 rows x 33 tokens: past one epoch
    got = [resumed.next_batch(4) for _ in range(55)]
    assert all(torch.equal(e, g) for e, g in zip(expected, got))
    assert whole.epoch >= 1  # the stream wrapped around and went on
    with pytest.raises(ValueError, match="stream"):
        other = StreamingPackedStream(f"stream:{parquet_dir[0]}/", tokenizer, 32, seed=0, docs_per_chunk=7)
        other.load_state_dict({**state, "dataset": "stream:elsewhere"})


def test_held_out_documents_never_appear(parquet_dir, tokenizer):
    root, docs = parquet_dir
    held = [type(d)(d.id, d.text[:120]) for d in docs[:20]]  # matched by text (ids differ between sources)
    stream = StreamingPackedStream(f"stream:{root}", tokenizer, 32, seed=0, docs_per_chunk=7,
                                   held_out=HeldOut.of(held))
    rows = np.concatenate([stream.next_batch(8).numpy().ravel() for _ in range(40)])
    assert stream.excluded >= 20
    from subnet.data.sampling import encode_texts

    for ids in encode_texts(tokenizer, [d.text for d in held[:5]]):
        probe = np.asarray(ids[:12])
        windows = np.lib.stride_tricks.sliding_window_view(rows, len(probe))
        assert not (windows == probe).all(axis=1).any()


def test_training_on_a_stream_resumes_bit_for_bit(parquet_dir, tmp_path):
    from subnet.miner.config import TrainConfig
    from subnet.miner.train import train
    from tests.miner_run import quiet, single_threaded_deterministic

    root, _ = parquet_dir
    common = dict(competition="tiny", dataset=f"stream:{root}", steps=8, seq_len=32, micro_batch_size=4,
                  warmup_steps=2, log_every=2, reference_documents=20, docs_per_chunk=10, device="cpu",
                  deterministic=True)
    with single_threaded_deterministic():
        whole = train(TrainConfig(out_dir=str(tmp_path / "a"), checkpoint_every=3, **common), echo=quiet)
        resumed = train(TrainConfig(out_dir=str(tmp_path / "b"), resume=str(tmp_path / "a/checkpoints/step_00000003"),
                                    **common), echo=quiet)
    assert resumed.start_step == 3 and resumed.losses == whole.losses
