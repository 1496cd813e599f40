"""`subnet model check`: a miner learns, before uploading, whether a validator would accept the model.

Run through the real `subnet` Typer app with real tiny transformers models on disk.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
from typer.testing import CliRunner

from subnet.commands.main import app

runner = CliRunner()


def check(path, *extra: str):
    result = runner.invoke(app, ["model", "check", str(path), "--competition", "tiny", "--documents", "16", "--json",
                                 *extra])
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    payload = json.loads(lines[-1]) if lines else None
    return result, payload


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from subnet.data.tokenizer import load_tokenizer

    vocab = -(-len(load_tokenizer("builtin:tiny")) // 64) * 64
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, intermediate_size=64, max_position_embeddings=256)
    model = LlamaForCausalLM(config)
    directory = tmp_path_factory.mktemp("models") / "tiny-llama"
    model.save_pretrained(directory, safe_serialization=True)
    return directory


def variant(source, tmp_path, name):
    target = tmp_path / name
    shutil.copytree(source, target)
    return target


def test_valid_tiny_llama_is_accepted_and_scored(tiny_llama):
    result, payload = check(tiny_llama)
    assert result.exit_code == 0, result.output
    assert payload["accepted"] is True
    assert payload["architecture"] == "LlamaForCausalLM"
    assert payload["competition"] == "tiny"
    assert payload["n_params"] > 10_000
    assert payload["documents"] == 16 and payload["failed_documents"] == 0
    assert math.isfinite(payload["mean_loss"]) and payload["ci_low"] <= payload["mean_loss"] <= payload["ci_high"]
    # An untrained model predicts roughly uniformly over its vocabulary: loss near log(vocab).
    vocab = json.loads((tiny_llama / "config.json").read_text())["vocab_size"]
    assert payload["mean_loss"] == pytest.approx(math.log(vocab), abs=0.5)


def test_documents_zero_skips_scoring(tiny_llama):
    result = runner.invoke(app, ["model", "check", str(tiny_llama), "--competition", "tiny", "--documents", "0", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["accepted"] is True and "mean_loss" not in payload


def test_pickle_weights_are_rejected(tiny_llama, tmp_path):
    model_dir = variant(tiny_llama, tmp_path, "pickled")
    (model_dir / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    result, payload = check(model_dir)
    assert result.exit_code == 1
    assert payload["accepted"] is False
    assert payload["reason"] == "forbidden_files"
    assert "pytorch_model.bin" in payload["detail"]
    assert "mean_loss" not in payload


def test_disallowed_architecture_is_rejected(tiny_llama, tmp_path):
    model_dir = variant(tiny_llama, tmp_path, "bert")
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["architectures"] = ["BertForMaskedLM"]
    config_path.write_text(json.dumps(config))
    result, payload = check(model_dir)
    assert result.exit_code == 1
    assert payload["accepted"] is False
    assert payload["reason"] == "architecture"
    assert "BertForMaskedLM" in payload["detail"]


def test_human_output_names_the_verdict(tiny_llama, tmp_path):
    model_dir = variant(tiny_llama, tmp_path, "pickled")
    (model_dir / "pytorch_model.bin").write_bytes(b"junk")
    result = runner.invoke(app, ["model", "check", str(model_dir), "--competition", "tiny", "--documents", "0"])
    assert result.exit_code == 1
    assert "rejected" in result.output and "forbidden_files" in result.output


def test_missing_path_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["model", "check", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "nope" in result.output


def test_unknown_competition_is_a_clear_error(tiny_llama):
    result = runner.invoke(app, ["model", "check", str(tiny_llama), "--competition", "nope", "--documents", "0"])
    assert result.exit_code == 2
    assert "unknown competition 'nope'" in result.output and "tiny" in result.output
