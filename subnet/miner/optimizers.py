"""The optimizers and the learning-rate schedule of a training run.

AdamW for everything, or Muon for the hidden matrices; weight decay only where it belongs; the
schedule is a pure function of the step, so a checkpoint's step number is its whole state.
"""

from __future__ import annotations

import math

import torch

from subnet.miner.config import TrainConfig


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine decay to min_ratio at the last step. A pure function of step,
    so the schedule's whole state is the step number stored in the checkpoint."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def split_parameters(model: torch.nn.Module) -> dict[str, list[tuple[str, torch.nn.Parameter]]]:
    """'matrices': 2-D weights inside the network (weight decay; Muon when chosen);
    'head': 2-D weights of an untied output head (weight decay, never Muon);
    'no_decay': embeddings, norms, biases (no weight decay)."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_ids = {id(head.weight)} if head is not None else set()
    groups: dict[str, list[tuple[str, torch.nn.Parameter]]] = {"matrices": [], "head": [], "no_decay": []}
    for name, p in model.named_parameters():  # tied parameters appear once
        if not p.requires_grad:
            continue
        if p.dim() < 2 or id(p) in embeddings:
            groups["no_decay"].append((name, p))
        elif id(p) in head_ids:
            groups["head"].append((name, p))
        else:
            groups["matrices"].append((name, p))
    return groups


def make_optimizers(model: torch.nn.Module, config: TrainConfig, device: torch.device,
                    sharded: bool = False) -> list[torch.optim.Optimizer]:
    """AdamW for everything, or Muon for the hidden matrices plus AdamW for the rest.

    Sharded (FSDP2) parameters are DTensors, which the fused kernels do not take: foreach there.

    Each param group carries `base_lr`; the loop scales it by the schedule every step.
    """
    groups = split_parameters(model)
    params = lambda key: [p for _, p in groups[key]]  # noqa: E731
    adam_groups = [
        {"params": params("head"), "weight_decay": config.weight_decay, "base_lr": config.lr},
        {"params": params("no_decay"), "weight_decay": 0.0, "base_lr": config.lr},
    ]
    optimizers: list[torch.optim.Optimizer] = []
    if config.optimizer == "muon":
        if not hasattr(torch.optim, "Muon"):
            raise ValueError(f"--optimizer muon needs torch.optim.Muon (torch >= 2.9); this is torch {torch.__version__}")
        muon = torch.optim.Muon(
            [{"params": params("matrices"), "base_lr": config.muon_lr}], lr=config.muon_lr,
            weight_decay=config.weight_decay, momentum=config.muon_momentum, adjust_lr_fn="match_rms_adamw",
        )
        optimizers.append(muon)
    else:
        adam_groups.insert(0, {"params": params("matrices"), "weight_decay": config.weight_decay, "base_lr": config.lr})
    adam_groups = [g for g in adam_groups if g["params"]]
    optimizers.insert(0, torch.optim.AdamW(adam_groups, lr=config.lr, betas=(config.beta1, config.beta2),
                                           eps=config.adam_eps,
                                           **({"foreach": True} if sharded else fused_kwargs(device))))
    return optimizers


def fused_kwargs(device: torch.device) -> dict:
    """Fused AdamW runs on CUDA and (torch >= 2.4) CPU; fall back to foreach elsewhere."""
    if device.type in ("cuda", "cpu"):
        return {"fused": True}
    return {"foreach": True}
