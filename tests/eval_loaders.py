"""Tiny models and model loaders for the evaluation tests.

The worker imports a loader by path ("tests.eval_loaders:load_saved"), the way it imports
subnet.hub.loading:load_model in production. Each loader below stands for one way a miner's
model can behave.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
import transformers

from subnet.data.types import TokenizedDocuments
from subnet.hub.errors import ModelRejected

VOCAB = 256


def tiny_model(arch: str = "llama", vocab: int = VOCAB, seed: int = 0, **overrides) -> torch.nn.Module:
    """A random-init float32 model of the given architecture, hidden 32, 2 layers, SDPA, eval mode."""
    torch.manual_seed(seed)
    common = dict(vocab_size=vocab, **overrides)
    if arch == "gpt2":
        config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=512, **common)
        cls = transformers.GPT2LMHeadModel
    else:
        llama_like = dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=512, **common,
        )
        config, cls = {
            "llama": (lambda: transformers.LlamaConfig(**llama_like), transformers.LlamaForCausalLM),
            "qwen2": (lambda: transformers.Qwen2Config(**llama_like), transformers.Qwen2ForCausalLM),
            "qwen3": (lambda: transformers.Qwen3Config(head_dim=8, **llama_like), transformers.Qwen3ForCausalLM),
            "mistral": (lambda: transformers.MistralConfig(**llama_like), transformers.MistralForCausalLM),
            "gemma2": (
                lambda: transformers.Gemma2Config(head_dim=8, final_logit_softcapping=2.0, **llama_like),
                transformers.Gemma2ForCausalLM,
            ),
        }[arch]
        config = config()
    config._attn_implementation = "eager" if arch == "gemma2" else "sdpa"  # Gemma 2 has no SDPA path
    model = cls(config).eval()
    # Random init is nearly uniform; larger weights give losses that differ between documents.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.mul_(8.0)
    return model


def random_docs(lengths, vocab: int = VOCAB, seed: int = 0, truncated=None) -> TokenizedDocuments:
    rng = np.random.default_rng(seed)
    tokens = [rng.integers(0, vocab, size=n, dtype=np.int64) for n in lengths]
    return TokenizedDocuments(
        doc_ids=[f"doc{i}" for i in range(len(lengths))],
        tokens=tokens,
        n_bytes=np.array([4 * n + 1 for n in lengths], dtype=np.int64),
        truncated=np.zeros(len(lengths), bool) if truncated is None else np.asarray(truncated, bool),
    )


# --- loaders: loader(model_dir, competition, device=..., dtype=...) -> model -------------------


def load_saved(model_dir, competition, device="cpu", dtype=None):
    """A well-behaved model saved with save_pretrained."""
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype or torch.float32)
    return model.to(device).eval()


def load_rejected(model_dir, competition, device="cpu", dtype=None):
    raise ModelRejected("too_many_params", f"{model_dir} has more parameters than {competition.id} allows")


def load_hanging(model_dir, competition, device="cpu", dtype=None):
    time.sleep(3600)


def load_greedy(model_dir, competition, device="cpu", dtype=None):
    """Asks for 64 GiB; under the address-space limit the test sets (16 GiB) this fails with MemoryError."""
    return np.ones(1 << 36, dtype=np.uint8)


def load_crashing(model_dir, competition, device="cpu", dtype=None):
    os.abort()


def load_by_name(model_dir, competition, device="cpu", dtype=None):
    """Dispatch on the model directory's name, so one score_models call mixes behaviours."""
    behaviours = {"hangs": load_hanging, "rejected": load_rejected, "greedy": load_greedy, "crashes": load_crashing}
    load = behaviours.get(os.path.basename(os.path.normpath(model_dir)), load_saved)
    return load(model_dir, competition, device=device, dtype=dtype)


def load_hanging_with_pid(model_dir, competition, device="cpu", dtype=None):
    """Hangs like load_hanging, after writing the worker's pid next to the model (tests look for it)."""
    part = os.path.join(model_dir, "worker.pid.part")
    with open(part, "w") as f:
        f.write(str(os.getpid()))
    os.replace(part, os.path.join(model_dir, "worker.pid"))  # readers never see a half-written file
    time.sleep(3600)
