"""How the model is spread over processes: replicated (DDP) or sharded (FSDP2), chosen by memory.

DDP keeps a full copy of weights, gradients and optimizer state on every GPU: fine while that
fits (about 16 bytes per parameter with AdamW in fp32). A b3 model (3.4B parameters) needs about
54 GB before activations, so it is sharded with PyTorch's FSDP2 (`fully_shard`): each of N GPUs
holds 1/N of every tensor, gathers a layer's weights just before it runs, and reduce-scatters its
gradients after. Mixed precision keeps fp32 master weights and reductions and computes in bf16.

Checkpoints of a sharded run are written with `torch.distributed.checkpoint` (every rank writes
its own shard, in parallel, and any number of ranks can read them back), next to a consolidated
safetensors model that validators load.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
import torch.distributed as dist

DCP_SUBDIR = "dcp"
BYTES_PER_PARAM_ADAMW = 16  # fp32 weights 4 + grads 4 + AdamW moments 8
FITS_FRACTION = 0.6  # replicate only while state takes at most this share of the device (activations need the rest)


def choose_parallelism(requested: str, world_size: int, n_params: int, device: torch.device) -> str:
    """'none' for one process; otherwise the requested mode, or for 'auto' DDP while a replica fits."""
    if world_size <= 1:
        return "none"
    if requested != "auto":
        return requested
    if device.type != "cuda":
        return "ddp"
    total = torch.cuda.get_device_properties(device).total_memory
    return "ddp" if n_params * BYTES_PER_PARAM_ADAMW <= FITS_FRACTION * total else "fsdp"


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated transformer blocks of a transformers causal LM (Llama, Qwen, Mistral, GPT-2 ...)."""
    for owner in (getattr(model, "model", None), getattr(model, "transformer", None)):
        for name in ("layers", "h"):
            blocks = getattr(owner, name, None) if owner is not None else None
            if isinstance(blocks, torch.nn.ModuleList):
                return list(blocks)
    raise ValueError(f"cannot find the decoder layers of {type(model).__name__} to shard")


def shard_model(model: torch.nn.Module, device: torch.device, bf16: bool) -> torch.nn.Module:
    """FSDP2 in place: each decoder layer is one unit (gathered just in time), the rest the root unit."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) \
        if device.type == "cuda" and bf16 else MixedPrecisionPolicy()
    for layer in decoder_layers(model):
        fully_shard(layer, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    return model


def wrap(model: torch.nn.Module, mode: str, device: torch.device, bf16: bool,
         activation_checkpointing: bool) -> torch.nn.Module:
    """The module the loop calls: the model itself, a DDP wrapper, or the model sharded in place."""
    if activation_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if mode == "fsdp":
        return shard_model(model, device, bf16)
    if mode == "ddp":
        device_ids = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    return model


def gradient_sync(train_model: torch.nn.Module, mode: str, last_micro: bool):
    """Reduce gradients only on the last micro-batch of a step (the others accumulate locally)."""
    if mode == "ddp" and not last_micro:
        return train_model.no_sync()
    if mode == "fsdp":
        train_model.set_requires_gradient_sync(last_micro)
    return contextlib.nullcontext()


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every rank takes part; rank 0 gets the whole fp32 state on the CPU, the others an empty dict."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def consolidated_model(model: torch.nn.Module) -> torch.nn.Module | None:
    """A plain (unsharded) copy of a sharded model on the CPU, on rank 0; None elsewhere."""
    from transformers import AutoModelForCausalLM

    full = full_state_dict(model)
    if dist.get_rank() != 0:
        return None
    plain = AutoModelForCausalLM.from_config(model.config)
    missing, unexpected = plain.load_state_dict(full, strict=False)
    tied = {k for k in missing if k.endswith("lm_head.weight")} if model.config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"consolidated state does not match the model: missing {missing}, unexpected {unexpected}")
    return plain


def save_sharded_state(model: torch.nn.Module, optimizers, directory: Path) -> None:
    """Every rank writes its shard of the weights and optimizer states (torch.distributed.checkpoint)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim_state = get_state_dict(model, optimizers)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(directory))


def load_sharded_state(model: torch.nn.Module, optimizers, directory: Path) -> None:
    """Read the shards back into an already sharded model and its optimizers (any world size)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_state, optim_state = get_state_dict(model, optimizers)
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, checkpoint_id=str(directory))
    set_state_dict(model, optimizers, model_state_dict=state["model"], optim_state_dict=state["optim"])
