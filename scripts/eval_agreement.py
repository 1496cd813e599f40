#!/usr/bin/env python
"""How much do per-document losses move when the batch composition changes?

Two validators with the same documents build the same batch plan (it depends only on the
documents and the configured token budget), but a CUDA out-of-memory retry splits a batch,
and an operator may configure another budget or layout. In float32 every configuration gives
the batch-size-1 losses to rounding; in low precision, kernels pick different reduction orders
for different batch shapes. This script scores two related random models (B = A plus noise, so
their losses are close and paired verdicts sit near the boundary) under several layouts and
token budgets, in float32 and in bfloat16 ON CPU, A PROXY: CUDA bf16 kernels round differently
and are not measured here. It prints, per configuration, the max and median relative change of
per-document per-token losses against the baseline (padded, budget 1024), the change of the mean,
and how often the paired verdict (subnet.scoring.compare.paired_compare) differs from the
baseline's over a grid of advantages eps spanning the verdict's boundary. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONFIGS = {  # name: (layout, token budget)
    "padded-1024": ("padded", 1024),  # baseline: the CPU default
    "batch1": ("padded", 1),  # every document alone
    "padded-256": ("padded", 256),
    "padded-4096": ("padded", 4096),
    "packed-1024": ("packed", 1024),
    "packed-4096": ("packed", 4096),
}
BASELINE = "padded-1024"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--docs", type=int, default=48)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--noise", type=float, default=0.02, help="relative weight noise of model B")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def build_models(args):
    import torch
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=3 * args.hidden, max_position_embeddings=args.seq_len + 1,
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(args.seed)
    a = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for p in a.parameters():
            if p.dim() >= 2:
                p.mul_(8.0)  # random init is nearly uniform; larger weights spread the losses
    b = transformers.LlamaForCausalLM(config).eval()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        for p in b.parameters():
            p.add_(torch.randn_like(p) * p.abs().mean() * args.noise)
    return a, b


def build_docs(args):
    from subnet.data.types import TokenizedDocuments

    rng = np.random.default_rng(args.seed)
    lengths = np.clip(rng.lognormal(np.log(120), 0.8, size=args.docs).astype(np.int64), 2, args.seq_len + 1)
    tokens = [rng.integers(0, args.vocab, size=int(n), dtype=np.int64) for n in lengths]
    return TokenizedDocuments([str(i) for i in range(args.docs)], tokens, lengths * 4, np.zeros(args.docs, bool))


def verdict_flips(base_a, base_b, cfg_a, cfg_b, grid: int = 401) -> tuple[float, float]:
    """Fraction of an eps grid across the boundary where the verdict differs, and that window's width."""
    from subnet.competitions import AdvantageSchedule
    from subnet.scoring.compare import paired_compare

    # Around the eps where mean(B) = (1 - eps) mean(A): +- 4 standard errors of the paired ratio.
    ratio = base_b / base_a
    centre = 1 - np.mean(base_b) / np.mean(base_a)
    half = 4 * np.std(ratio) / np.sqrt(len(ratio))
    flips = 0
    for eps in np.linspace(max(0.0, centre - half), centre + half, grid):
        schedule = AdvantageSchedule(eps0=float(eps), half_life_blocks=1e12)
        v0 = paired_compare(base_a, base_b, 0, schedule).later_wins
        v1 = paired_compare(cfg_a, cfg_b, 0, schedule).later_wins
        flips += v0 != v1
    return flips / grid, 2 * half


def main(argv=None) -> None:
    import torch

    from subnet.eval.engine import compute_losses

    args = parse_args(argv)
    docs = build_docs(args)
    results = []
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        models = [m.to(dtype) for m in build_models(args)]
        per_token = {
            name: [compute_losses(m, docs, layout=layout, token_budget=budget).per_token() for m in models]
            for name, (layout, budget) in CONFIGS.items()
        }
        if np.nanmean(per_token[BASELINE][1]) > np.nanmean(per_token[BASELINE][0]):
            per_token = {k: v[::-1] for k, v in per_token.items()}  # the later model (B) is the better one
        base_a, base_b = per_token[BASELINE]
        for name, (cfg_a, cfg_b) in per_token.items():
            rel = np.abs(cfg_a - base_a) / np.abs(base_a)
            flip_rate, window = verdict_flips(base_a, base_b, cfg_a, cfg_b)
            row = {
                "dtype": dtype_name + (" (CPU proxy)" if dtype != torch.float32 else ""),
                "config": name,
                "max_rel": float(np.nanmax(rel)),
                "median_rel": float(np.nanmedian(rel)),
                "mean_rel": float(abs(np.nanmean(cfg_a) - np.nanmean(base_a)) / np.nanmean(base_a)),
                "verdict_flip_rate": flip_rate,
                "eps_window": window,
            }
            results.append(row)
            print(f"{row['dtype']:>22} {name:>12}  max {row['max_rel']:.2e}  median {row['median_rel']:.2e}"
                  f"  mean {row['mean_rel']:.2e}  verdict flips {100 * flip_rate:.1f}% of eps in +-{window / 2:.2e}")
    print(json.dumps({"docs": args.docs, "baseline": BASELINE, "threads": torch.get_num_threads(), "rows": results}))


if __name__ == "__main__":
    main()
