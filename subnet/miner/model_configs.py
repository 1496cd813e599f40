"""Reference model configurations, one per competition, for training from scratch.

They are starting points that satisfy the competition's constraints (architecture, parameter
range, sequence length), not tuned recipes. The vocabulary is the tokenizer's length rounded up
to a multiple of 64, which keeps the embedding matmuls on fast tensor-core shapes.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PretrainedConfig

from subnet.competitions import Competition

VOCAB_MULTIPLE = 64


def padded_vocab_size(tokenizer_length: int, multiple: int = VOCAB_MULTIPLE) -> int:
    if tokenizer_length <= 0:
        raise ValueError(f"tokenizer has no tokens (length {tokenizer_length})")
    return -(-tokenizer_length // multiple) * multiple


def _special_ids(tokenizer) -> dict[str, Any]:
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos_token; training packs documents separated by EOS")
    bos = tokenizer.bos_token_id
    pad = tokenizer.pad_token_id
    return {"eos_token_id": eos, "bos_token_id": bos if bos is not None else eos, "pad_token_id": pad}


def tiny_config(competition: Competition, tokenizer) -> LlamaConfig:
    """About 0.4M parameters: trains in seconds on a CPU, enough to show learning."""
    return LlamaConfig(
        vocab_size=padded_vocab_size(len(tokenizer)),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=256,
        max_position_embeddings=competition.max_seq_len,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
        **_special_ids(tokenizer),
    )


def b3_config(competition: Competition, tokenizer) -> LlamaConfig:
    """A Llama-3.2-3B-shaped model: ~3.1B parameters with the cl100k (gpt-4) vocabulary."""
    return LlamaConfig(
        vocab_size=padded_vocab_size(len(tokenizer)),
        hidden_size=3072,
        num_hidden_layers=28,
        num_attention_heads=24,
        num_key_value_heads=8,
        intermediate_size=8192,
        max_position_embeddings=competition.max_seq_len,
        rope_theta=500_000.0,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
        **_special_ids(tokenizer),
    )


REFERENCE_CONFIGS: dict[str, Callable[[Competition, Any], PretrainedConfig]] = {
    "tiny": tiny_config,
    "b3": b3_config,
}


def reference_config(competition: Competition, tokenizer) -> PretrainedConfig:
    try:
        make = REFERENCE_CONFIGS[competition.id]
    except KeyError:
        raise ValueError(
            f"no reference model config for competition {competition.id!r} (known: {sorted(REFERENCE_CONFIGS)}); "
            "train from a model directory instead (--init DIR)"
        ) from None
    return make(competition, tokenizer)


def count_parameters(model: torch.nn.Module) -> int:
    """Unique parameters (tied embeddings counted once), as the validator counts them."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def build_model(config: PretrainedConfig, competition: Competition) -> torch.nn.Module:
    """A freshly initialised model for `config`, checked against the competition's rules."""
    if isinstance(config, LlamaConfig):
        model = LlamaForCausalLM(config)
    else:  # pragma: no cover - only Llama reference configs ship today
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_config(config)
    arch = type(model).__name__
    if arch not in competition.architectures:
        raise ValueError(f"{arch} is not allowed in competition {competition.id!r} ({competition.architectures})")
    n = count_parameters(model)
    if not competition.min_params <= n <= competition.max_params:
        raise ValueError(
            f"reference model has {n:,} parameters; competition {competition.id!r} allows "
            f"{competition.min_params:,}..{competition.max_params:,}"
        )
    return model
