"""Safe loading: every rejection happens before any large allocation, with a stable reason."""

from __future__ import annotations

import json
import resource
import sys
import tracemalloc
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from subnet.competitions import Competition
from subnet.hub.errors import ModelRejected
from subnet.hub.loading import check_model_dir, load_model, tokenizer_vocab_size

VOCAB = 512


def competition(**overrides) -> Competition:
    fields = dict(
        id="tiny", tokenizer="builtin:tiny", max_seq_len=128, min_params=10_000, max_params=1_000_000,
        max_bytes=10**8, architectures=("LlamaForCausalLM", "GPT2LMHeadModel"),
    )
    fields.update(overrides)
    return Competition(**fields)


def llama_config(**overrides) -> LlamaConfig:
    fields = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=VOCAB, max_position_embeddings=256, tie_word_embeddings=False,
    )
    fields.update(overrides)
    return LlamaConfig(**fields)


def save_tiny_llama(directory: Path, seed: int = 0, **config) -> Path:
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(**config))
    model.save_pretrained(directory, safe_serialization=True)
    return directory


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("llama"))


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def _edit_config(directory: Path, **changes) -> None:
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def rejected_cheaply(directory: Path, comp: Competition, tokenizer_vocab: int = 300) -> ModelRejected:
    """Run the check and return its rejection, asserting that it allocated almost nothing."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    try:
        with pytest.raises(ModelRejected) as e:
            check_model_dir(directory, comp, tokenizer_vocab=tokenizer_vocab)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert peak < 20 * 2**20, f"python allocations peaked at {peak / 2**20:.1f} MiB"
    assert rss_growth < 100 * 2**10, f"peak RSS grew by {rss_growth / 2**10:.1f} MiB"
    return e.value


# ----------------------------------------------------------------------------- accepted


def test_tiny_llama_checks_and_loads_identically(llama_dir):
    info = check_model_dir(llama_dir, competition(), tokenizer_vocab=300)
    assert info.architecture == "LlamaForCausalLM" and info.vocab_size == VOCAB
    assert info.max_position_embeddings == 256 and info.weight_files == ("model.safetensors",)
    torch.manual_seed(0)
    reference = LlamaForCausalLM(llama_config()).eval()
    assert info.n_params == sum(p.numel() for p in reference.parameters())
    model = load_model(llama_dir, competition(), tokenizer_vocab=300)
    assert not model.training and model.dtype == torch.float32
    tokens = torch.randint(0, VOCAB, (2, 12))
    with torch.no_grad():
        assert torch.equal(model(tokens).logits, reference(tokens).logits)
    half = load_model(llama_dir, competition(), dtype=torch.bfloat16, tokenizer_vocab=300)
    assert half.dtype == torch.bfloat16


def test_tied_sharded_and_gpt2_models_load(tmp_path):
    torch.manual_seed(1)
    tied = LlamaForCausalLM(llama_config(tie_word_embeddings=True)).eval()
    tied.save_pretrained(tmp_path / "tied", safe_serialization=True, max_shard_size="20KB")
    assert (tmp_path / "tied" / "model.safetensors.index.json").exists()
    info = check_model_dir(tmp_path / "tied", competition(), tokenizer_vocab=300)
    assert len(info.weight_files) > 1
    model = load_model(tmp_path / "tied", competition(), tokenizer_vocab=300)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    tokens = torch.randint(0, VOCAB, (1, 9))
    with torch.no_grad():
        assert torch.equal(model(tokens).logits, tied(tokens).logits)

    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=VOCAB, n_positions=128))
    gpt2.save_pretrained(tmp_path / "gpt2", safe_serialization=True)
    assert check_model_dir(tmp_path / "gpt2", competition(), tokenizer_vocab=300).max_position_embeddings == 128
    loaded = load_model(tmp_path / "gpt2", competition(), tokenizer_vocab=300)
    with torch.no_grad():
        assert torch.equal(loaded(tokens).logits, gpt2.eval()(tokens).logits)
    with pytest.raises(ModelRejected) as e:
        check_model_dir(tmp_path / "gpt2", competition(max_seq_len=256), tokenizer_vocab=300)
    assert e.value.reason == "seq_len"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_load_straight_to_gpu_in_bfloat16(llama_dir):
    model = load_model(llama_dir, competition(), device="cuda", tokenizer_vocab=300)
    assert model.dtype == torch.bfloat16
    assert all(t.device.type == "cuda" for t in [*model.parameters(), *model.buffers()])


def test_load_on_an_emulated_cuda_host_is_bf16_with_float32_rope(llama_dir, emulated_cuda):
    """The loader's CUDA path on CPU (tests/cuda_emulation.py): bf16 weights, RoPE's inv_freq kept float32
    (a `.to(bfloat16)` would round it; cos at position 4095 moved by 0.59)."""
    model = load_model(llama_dir, competition(), device="cuda:1", tokenizer_vocab=300)
    assert model.dtype == torch.bfloat16
    assert model.model.rotary_emb.inv_freq.dtype == torch.float32


# ----------------------------------------------------------------------------- rejected, cheaply


def test_too_many_and_too_few_params(llama_dir):
    assert rejected_cheaply(llama_dir, competition(max_params=20_000)).reason == "too_many_params"
    assert rejected_cheaply(llama_dir, competition(min_params=100_000)).reason == "too_few_params"


def test_absurd_config_is_refused_before_building_anything(llama_dir, tmp_path):
    directory = _copy(llama_dir, tmp_path / "huge")
    _edit_config(directory, hidden_size=10**9, intermediate_size=4 * 10**9, num_attention_heads=1)
    assert rejected_cheaply(directory, competition(max_params=10**12)).reason == "too_many_params"
    _edit_config(directory, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=10**6)
    assert rejected_cheaply(directory, competition(max_params=10**12)).reason == "too_many_params"
    # 400M parameters within the limit: only the meta model is built, so nothing large is allocated,
    # and the weights (tiny, wrong shapes) are refused by reading their header alone.
    _edit_config(directory, hidden_size=1024, intermediate_size=4096, num_hidden_layers=32, num_attention_heads=8,
                 num_key_value_heads=8, vocab_size=32_000)
    assert rejected_cheaply(directory, competition(max_params=10**9)).reason == "weights_mismatch"


def test_disallowed_architecture(tmp_path):
    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=VOCAB, n_positions=128))
    gpt2.save_pretrained(tmp_path / "gpt2", safe_serialization=True)
    only_llama = competition(architectures=("LlamaForCausalLM",))
    assert rejected_cheaply(tmp_path / "gpt2", only_llama).reason == "architecture"
    _edit_config(tmp_path / "gpt2", architectures=["EvilForCausalLM"])
    assert rejected_cheaply(tmp_path / "gpt2", competition(architectures=("EvilForCausalLM",))).reason == "architecture"
    _edit_config(tmp_path / "gpt2", architectures=["LlamaForCausalLM"])  # a GPT-2 config under a Llama name
    assert rejected_cheaply(tmp_path / "gpt2", competition()).reason == "bad_config"


def test_pickles_and_remote_code_are_refused(llama_dir, tmp_path):
    pickled = _copy(llama_dir, tmp_path / "pickled")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    assert rejected_cheaply(pickled, competition()).reason == "forbidden_files"
    code = _copy(llama_dir, tmp_path / "code")
    (code / "modeling_llama.py").write_text("import os; os.system('echo pwned')")
    assert rejected_cheaply(code, competition()).reason == "forbidden_files"
    auto_map = _copy(llama_dir, tmp_path / "auto_map")
    _edit_config(auto_map, auto_map={"AutoModelForCausalLM": "evil.EvilModel"})
    assert rejected_cheaply(auto_map, competition()).reason == "remote_code"
    kernel = _copy(llama_dir, tmp_path / "kernel")
    _edit_config(kernel, _attn_implementation="kernels-community/evil-attention")
    assert rejected_cheaply(kernel, competition()).reason == "remote_code"


def test_tokenizer_and_sequence_length_mismatch(llama_dir, monkeypatch):
    assert rejected_cheaply(llama_dir, competition(), tokenizer_vocab=VOCAB + 1).reason == "vocab_mismatch"
    assert rejected_cheaply(llama_dir, competition(max_seq_len=512)).reason == "seq_len"
    # Without an explicit size, the competition's tokenizer is looked up (lazily, once per name).
    fake = types.ModuleType("subnet.data.tokenizer")
    fake.load_tokenizer = lambda ref: ["tok"] * (VOCAB + 100) if ref == "big:tok" else ["tok"] * 10
    monkeypatch.setitem(sys.modules, "subnet.data.tokenizer", fake)
    tokenizer_vocab_size.cache_clear()
    try:
        with pytest.raises(ModelRejected) as e:
            check_model_dir(llama_dir, competition(tokenizer="big:tok"))
        assert e.value.reason == "vocab_mismatch" and str(VOCAB + 100) in e.value.detail
        assert check_model_dir(llama_dir, competition(tokenizer="small:tok")).vocab_size == VOCAB
    finally:
        tokenizer_vocab_size.cache_clear()


def test_weights_must_be_safetensors_matching_the_config(llama_dir, tmp_path):
    none = _copy(llama_dir, tmp_path / "none")
    (none / "model.safetensors").unlink()
    assert rejected_cheaply(none, competition()).reason == "no_safetensors"
    wrong = _copy(llama_dir, tmp_path / "wrong")
    save_file({"model.embed_tokens.weight": torch.zeros(VOCAB, 16)}, str(wrong / "model.safetensors"))
    assert rejected_cheaply(wrong, competition()).reason == "weights_mismatch"
    truncated = _copy(llama_dir, tmp_path / "truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert rejected_cheaply(truncated, competition()).reason == "weights_mismatch"
    bad_config = _copy(llama_dir, tmp_path / "bad_config")
    (bad_config / "config.json").write_text("{not json")
    assert rejected_cheaply(bad_config, competition()).reason == "bad_config"
