"""Memory arithmetic for training a competition's reference model, replicated (DDP) or sharded (FSDP2).

Counts are exact for parameters (the model is built on the meta device); activations use the
standard per-layer estimate for a transformer with fused attention, bf16 activations
(Korthikanti et al. 2022: about 34 * seq * hidden bytes per layer and sequence), plus the float32
logits of the loss. These are estimates to plan a run, not measurements.

    python scripts/memory_plan.py --competition b3 --gpus 8 --gpu-gib 80 --micro-batch 1 2 4 8
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GIB = 1024**3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--competition", default="b3")
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--gpu-gib", type=float, default=80.0)
    ap.add_argument("--micro-batch", type=int, nargs="+", default=[1, 2, 4, 8])
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # planning needs no download; the tokenizer's size is known
    import torch

    from subnet.competitions import get_competition
    from subnet.data.tokenizer import load_tokenizer
    from subnet.miner.model_configs import count_parameters, reference_config

    competition = get_competition(args.competition)
    try:
        tokenizer = load_tokenizer(competition.tokenizer)
    except Exception as e:  # the b3 tokenizer comes from the Hub; plan with its known size when offline
        print(f"(tokenizer {competition.tokenizer} unavailable here: {type(e).__name__}; using 100,277 entries)")

        class _Known:  # cl100k_base: 100,277 entries, <|endoftext|> = 100257
            eos_token_id = bos_token_id = pad_token_id = 100_257

            def __len__(self):
                return 100_277
        tokenizer = _Known()
    config = reference_config(competition, tokenizer)
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    n = count_parameters(model)
    seq, h, layers, vocab = competition.max_seq_len, config.hidden_size, config.num_hidden_layers, config.vocab_size
    state = 16 * n  # fp32 weights 4 + grads 4 + AdamW moments 8
    print(f"{competition.id}: {n / 1e9:.2f}B parameters, {layers} layers, hidden {h}, vocab {vocab}, seq {seq}")
    print(f"weights + grads + AdamW state (fp32): {state / GIB:.1f} GiB in total")
    print(f"  DDP: {state / GIB:.1f} GiB on every GPU; FSDP2 over {args.gpus}: {state / args.gpus / GIB:.1f} GiB per GPU")
    per_seq_layer = 34 * seq * h  # bytes, bf16 activations with fused attention
    logits = seq * vocab * 4 * 2  # float32 logits and their gradient
    gathered = 2 * 2 * n / layers  # bf16 weights of the layer in use and the one prefetched
    print(f"per GPU with FSDP2 over {args.gpus} x {args.gpu_gib:.0f} GiB (activations per micro-batch sequence: "
          f"{per_seq_layer * layers / GIB:.1f} GiB, {2 * seq * h * layers / GIB:.2f} GiB with checkpointing):")
    for b in args.micro_batch:
        plain = state / args.gpus + gathered + b * (per_seq_layer * layers + logits)
        ckpt = state / args.gpus + gathered + b * (2 * seq * h * layers + per_seq_layer + logits)
        fit = lambda x: "fits" if x < 0.9 * args.gpu_gib * GIB else "too big"  # noqa: E731
        print(f"  micro-batch {b}: {plain / GIB:6.1f} GiB ({fit(plain)}), "
              f"with activation checkpointing {ckpt / GIB:6.1f} GiB ({fit(ckpt)})")


if __name__ == "__main__":
    main()
