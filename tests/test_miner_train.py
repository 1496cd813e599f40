"""The miner's training loop: it learns, resumes exactly, shards data, and runs under DDP (gloo)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from subnet.data.types import Document, RoundData
from subnet.miner.config import TrainConfig
from subnet.miner.data import HeldOut, PackedStream, labelled_seed
from subnet.miner.model_configs import count_parameters, padded_vocab_size
from subnet.miner.train import lr_factor, make_optimizers, split_parameters, train
from tests.miner_run import (
    STEPS,
    as_torchrun_rank,
    quiet,
    single_threaded_deterministic,
    spawn_ranks,
    trained_run,
)

# ----------------------------------------------------------------------------- pure pieces


def test_lr_schedule_warms_up_linearly_then_decays_by_cosine_to_the_floor():
    warm, total, floor = 10, 110, 0.1
    f = [lr_factor(s, warm, total, floor) for s in range(total)]
    np.testing.assert_allclose(f[:warm], [(s + 1) / warm for s in range(warm)])
    assert f[warm] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[warm:], f[warm + 1 :]))  # never increases after warm-up
    assert f[warm + 50] == pytest.approx(floor + (1 - floor) * 0.5)  # half way: cosine at pi/2
    assert lr_factor(total, warm, total, floor) == pytest.approx(floor)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="grad_accum"):
        TrainConfig(grad_accum=0)
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="min_lr_ratio"):
        TrainConfig(min_lr_ratio=2)
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({"learning_rate": 1})
    saved = TrainConfig(lr=1e-3).to_dict()
    assert TrainConfig(lr=2e-3, log_every=3).changes_breaking_resume(saved) == ["lr"]


def test_vocab_is_padded_to_a_multiple_of_64():
    assert [padded_vocab_size(n) for n in (1, 64, 65, 4000)] == [64, 64, 128, 4032]


class Cl100kLength:
    """The length and EOS of the b3 tokenizer (Xenova/gpt-4, cl100k), which would need a download."""

    eos_token_id, bos_token_id, pad_token_id = 100257, None, None

    def __len__(self) -> int:
        return 100277


def test_reference_configs_fit_their_competitions():
    from subnet.competitions import get_competition
    from subnet.miner.model_configs import build_model, reference_config

    for comp_id, tok in (("tiny", _tokenizer()), ("b3", Cl100kLength())):
        comp = get_competition(comp_id)
        config = reference_config(comp, tok)
        assert config.vocab_size % 64 == 0 and config.vocab_size >= len(tok)
        assert config.max_position_embeddings == comp.max_seq_len and config.tie_word_embeddings
        with torch.device("meta"):  # shapes only: the b3 model would need 12 GB
            model = build_model(config, comp)
        assert comp.min_params <= count_parameters(model) <= comp.max_params
    assert count_parameters(model) > 3e9


def _tiny_llama(tie: bool) -> LlamaForCausalLM:
    cfg = LlamaConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=64, tie_word_embeddings=tie)
    return LlamaForCausalLM(cfg)


@pytest.mark.parametrize("tie", [True, False])
def test_weight_decay_skips_norms_biases_and_embeddings_and_muon_takes_hidden_matrices(tie):
    model = _tiny_llama(tie)
    groups = split_parameters(model)
    names = {k: {n for n, _ in v} for k, v in groups.items()}
    every = {n for n, _ in model.named_parameters()}
    assert set().union(*names.values()) == every and sum(map(len, names.values())) == len(every)
    assert "model.embed_tokens.weight" in names["no_decay"]
    assert all("norm" in n for n in names["no_decay"] if n != "model.embed_tokens.weight")
    assert all(p.dim() == 2 for _, p in groups["matrices"])
    assert names["head"] == (set() if tie else {"lm_head.weight"})

    adamw = make_optimizers(model, TrainConfig(weight_decay=0.1), torch.device("cpu"))
    assert len(adamw) == 1
    decayed = {id(p) for g in adamw[0].param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(p) for _, p in groups["matrices"] + groups["head"]}

    adam, muon = make_optimizers(model, TrainConfig(optimizer="muon"), torch.device("cpu"))
    assert isinstance(muon, torch.optim.Muon)
    assert {id(p) for g in muon.param_groups for p in g["params"]} == {id(p) for _, p in groups["matrices"]}
    assert {id(p) for g in adam.param_groups for p in g["params"]} == {
        id(p) for _, p in groups["no_decay"] + groups["head"]}


NAMES = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


class CountingSource:
    """A DocumentSource whose documents name their seed, so the test can see which chunk each came from."""

    def fetch_round(self, seed: str, pages: int, page_size: int, max_documents: int) -> RoundData:
        n = min(pages * page_size, max_documents)
        docs = tuple(Document(f"{seed[:10]}/{i}", f"{NAMES[int(seed[2:4], 16) % 8]} {NAMES[i % 8]} " + "word " * (i % 7))
                     for i in range(n))
        return RoundData(seed, (seed,), docs)


def _tokenizer():
    from subnet.data.tokenizer import load_tokenizer

    return load_tokenizer("builtin:tiny")


def test_packed_rows_are_documents_back_to_back_with_eos_and_held_out_documents_never_appear():
    tok = _tokenizer()
    source = CountingSource()
    chunk0 = source.fetch_round(labelled_seed("train:5:0"), 1, 6, 6).documents
    held = HeldOut.of([chunk0[2]])  # pretend one training document is in the reference set
    stream = PackedStream(source, tok, seq_len=16, seed=5, held_out=held, docs_per_chunk=6)
    rows = stream.next_batch(12)
    assert rows.shape == (12, 17) and rows.dtype == torch.int64
    flat = rows.reshape(-1).tolist()
    expected = []
    for d in chunk0:
        if d is not chunk0[2]:
            expected += tok(d.text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    n = min(len(expected), len(flat))
    assert flat[:n] == expected[:n]
    assert n == len(expected)  # the rows covered the whole first chunk, where the held-out document was
    assert stream.excluded == 1


def test_stream_position_resumes_exactly_and_ranks_read_different_chunks():
    tok = _tokenizer()
    a = PackedStream(CountingSource(), tok, seq_len=24, seed=1, docs_per_chunk=5)
    a.next_batch(7)
    state = a.state_dict()
    expected = a.next_batch(9)
    b = PackedStream(CountingSource(), tok, seq_len=24, seed=1, docs_per_chunk=5)
    b.load_state_dict(state)
    assert torch.equal(b.next_batch(9), expected)
    with pytest.raises(ValueError, match="seed"):
        PackedStream(CountingSource(), tok, seq_len=24, seed=2, docs_per_chunk=5).load_state_dict(state)

    r0 = PackedStream(CountingSource(), tok, seq_len=24, seed=1, rank=0, world_size=2, docs_per_chunk=5)
    r1 = PackedStream(CountingSource(), tok, seq_len=24, seed=1, rank=1, world_size=2, docs_per_chunk=5)
    assert not torch.equal(r0.next_batch(4), r1.next_batch(4))


# ----------------------------------------------------------------------------- real training


def test_tiny_competition_trains_from_scratch_and_loss_falls():
    from subnet.competitions import get_competition
    from subnet.hub.download import check_upload_dir
    from subnet.hub.loading import check_model_dir

    result, out = trained_run()
    losses = result.losses
    assert len(losses) == STEPS and all(math.isfinite(x) for x in losses)
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    print(f"\ntiny from scratch: loss {first:.3f} -> {last:.3f} over {STEPS} steps, "
          f"{result.tokens_per_s:,.0f} tok/s, {result.n_params:,} params")
    assert last < 0.6 * first  # vocab ~ln(4k)=8.3 nats at start; synthetic text is very learnable
    assert result.tokens_per_s > 0
    # The final model is exactly what a validator accepts, and it is the model that was trained.
    comp = get_competition("tiny")
    info = check_model_dir(result.model_dir, comp)
    assert info.n_params == result.n_params == count_parameters(result.model)
    check_upload_dir(result.model_dir)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == list(range(50, STEPS + 1, 50))


@pytest.fixture
def one_thread():
    with single_threaded_deterministic():
        yield


def test_resume_from_checkpoint_reproduces_the_uninterrupted_loss_curve(tmp_path, one_thread):
    common = dict(competition="tiny", steps=16, seq_len=32, micro_batch_size=4, grad_accum=2, warmup_steps=4,
                  log_every=5, reference_documents=40, docs_per_chunk=30, deterministic=True, device="cpu")
    whole = train(TrainConfig(out_dir=str(tmp_path / "a"), checkpoint_every=7, **common), echo=quiet)
    resumed = train(TrainConfig(out_dir=str(tmp_path / "b"), resume=str(tmp_path / "a/checkpoints/step_00000007"),
                                **common), echo=quiet)
    assert resumed.start_step == 7
    assert resumed.losses == whole.losses  # bit for bit: same batches, same optimizer state, same RNG
    for (name, p), (_, q) in zip(whole.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.equal(p, q), name
    # A changed hyperparameter would silently mix two runs: refused, naming the field.
    with pytest.raises(ValueError, match="lr"):
        train(TrainConfig(out_dir=str(tmp_path / "c"), resume=str(tmp_path / "a/checkpoints/step_00000007"),
                          **{**common, "lr": 1e-2}), echo=quiet)


def test_muon_trains(tmp_path, one_thread):
    result = train(TrainConfig(competition="tiny", out_dir=str(tmp_path), optimizer="muon", steps=30, seq_len=32,
                               micro_batch_size=4, warmup_steps=5, log_every=30, reference_documents=40,
                               docs_per_chunk=50, device="cpu"), echo=quiet)
    assert np.mean(result.losses[-5:]) < np.mean(result.losses[:5]) - 1.0


# ----------------------------------------------------------------------------- progress display


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_auto_progress_draws_a_bar_only_on_a_terminal_and_only_when_no_echo_was_passed():
    from subnet.miner.train_progress import wants_bar

    assert wants_bar("auto", caller_echo=False, stream=_Stream(tty=True))
    assert not wants_bar("auto", caller_echo=False, stream=_Stream(tty=False))  # CI logs, pipes
    assert not wants_bar("auto", caller_echo=True, stream=_Stream(tty=True))  # devnet, tests, scripts
    assert wants_bar("bar", caller_echo=True, stream=_Stream(tty=False))
    assert not wants_bar("lines", caller_echo=False, stream=_Stream(tty=True))
    with pytest.raises(ValueError, match="progress"):
        TrainConfig(progress="fancy")


def test_progress_bar_mode_trains_the_same_as_log_lines_and_writes_the_same_metrics(tmp_path, one_thread, capsys):
    common = dict(competition="tiny", steps=6, seq_len=32, micro_batch_size=2, warmup_steps=2, log_every=3,
                  reference_documents=20, docs_per_chunk=20, deterministic=True, device="cpu", peak_flops=1e12)
    runs = {}
    for mode in ("lines", "bar"):
        echoed: list[str] = []
        result = train(TrainConfig(out_dir=str(tmp_path / mode), progress=mode, **common), echo=echoed.append)
        metrics = [json.loads(x) for x in (tmp_path / mode / "metrics.jsonl").read_text().splitlines()]
        runs[mode] = result, echoed, metrics, capsys.readouterr().err
    (lines_result, lines_echo, lines_metrics, _), (bar_result, bar_echo, bar_metrics, bar_err) = runs.values()
    assert bar_result.losses == lines_result.losses and len(bar_result.losses) == 6
    assert [m["loss"] for m in bar_metrics] == [m["loss"] for m in lines_metrics] == bar_result.losses[2::3]
    assert sum(x.startswith("step ") for x in lines_echo) == 2
    assert not any(x.startswith("step ") for x in bar_echo)  # the bar replaces the lines...
    assert "6/6" in bar_err and f"loss {bar_result.losses[-1]:.4f}" in bar_err and "mfu" in bar_err  # ...on stderr


# ----------------------------------------------------------------------------- DDP


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    as_torchrun_rank(rank, world, port)
    import torch.distributed as dist

    config = TrainConfig(competition="tiny", out_dir=out, steps=4, seq_len=32, micro_batch_size=2, grad_accum=2,
                         warmup_steps=2, log_every=2, reference_documents=20, docs_per_chunk=20, device="cpu")
    result = train(config, echo=quiet)
    digest = hashlib.sha256()
    for name, p in result.model.named_parameters():
        digest.update(name.encode() + p.detach().numpy().tobytes())
    Path(out, f"rank{rank}.json").write_text(json.dumps({"params": digest.hexdigest(), "losses": result.losses}))
    dist.destroy_process_group()


def test_ddp_with_gloo_two_processes_end_with_identical_parameters(tmp_path):
    spawn_ranks(_ddp_worker, 2, str(tmp_path))
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["params"] == r1["params"]
    assert r0["losses"] == r1["losses"] and len(r0["losses"]) == 4
    # Rank 0 wrote one checkpoint holding both ranks' data positions, which differ (sharded stream).
    from subnet.miner.checkpoint import list_checkpoints, load_trainer_state

    state = load_trainer_state(list_checkpoints(tmp_path)[-1])
    assert [s["data"][0]["rank"] for s in state["ranks"]] == [0, 1]
    assert (tmp_path / "model" / "model.safetensors").is_file()


# ----------------------------------------------------------------------------- CLI


def test_cli_train_runs_resumes_and_refuses_a_changed_config(tmp_path):
    from typer.testing import CliRunner

    from subnet.commands.miner_commands import app, parse_overrides

    assert parse_overrides(["weight_decay=0.05", "compile=true", "keep-checkpoints=2"]) == {
        "weight_decay": 0.05, "compile": True, "keep_checkpoints": 2}
    base = ["train", "--competition", "tiny", "--out-dir", str(tmp_path), "--steps", "4", "--seq-len", "32", "--batch-size", "2",
            "--warmup-steps", "2", "--device", "cpu", "--set", "reference_documents=20", "--set", "docs_per_chunk=20"]
    run = CliRunner().invoke(app, base)
    assert run.exit_code == 0, run.output
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 4 and Path(summary["model_dir"], "model.safetensors").is_file()
    again = CliRunner().invoke(app, base + ["--resume", "latest", "--lr", "0.01"])
    assert again.exit_code == 1 and "lr" in again.output
    bad = CliRunner().invoke(app, base + ["--set", "learning_rate=1"])
    assert bad.exit_code != 0 and "learning_rate" in bad.output
