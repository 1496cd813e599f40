"""Training throughput of the miner's loop.

- CPU: the real `subnet.miner.train.train` on the tiny competition (synthetic data, tokenization,
  packing, AdamW, checkpoint at the end), reported as training tokens per second.
- CPU, sharded (`--cpu-fsdp N`): the same run over N gloo processes with FSDP2, side by side.
- GPU (when one is present): a ~124M-parameter GPT-2-shaped model or a ~1B Llama (`--gpu-model`)
  stepped with the same loss, optimizer set-up and bf16 autocast as the loop, on random tokens
  (data is not the bottleneck there), reported as tokens per second and model FLOP utilisation:
  6 * params * tokens/s / peak. Under torchrun with `--fsdp` the model is sharded with FSDP2
  (bf16 compute, fp32 reductions) across the GPUs and the numbers are per GPU.

The last line of output is one JSON object with the numbers.

    python scripts/bench_train.py [--steps 60] [--gpu-steps 30] [--compile] [--cpu-fsdp 2]
    torchrun --standalone --nproc_per_node 8 scripts/bench_train.py --gpu-model 1b --fsdp
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from subnet.miner.config import TrainConfig  # noqa: E402
from subnet.miner.train import guess_peak_flops, make_optimizers, next_token_loss, train  # noqa: E402


def bench_cpu_tiny(steps: int, batch: int, seq_len: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-train-") as out:
        config = TrainConfig(competition="tiny", out_dir=out, steps=steps, micro_batch_size=batch, seq_len=seq_len,
                             warmup_steps=max(1, steps // 10), log_every=max(1, steps // 4), device="cpu",
                             reference_documents=160)
        started = time.perf_counter()
        result = train(config, echo=lambda line: print(line, file=sys.stderr))
        wall = time.perf_counter() - started
    return {
        "cpu_tiny_tokens_per_s": round(result.tokens_per_s, 1),
        "cpu_tiny_params": result.n_params,
        "cpu_tiny_tokens_per_step": batch * seq_len,
        "cpu_tiny_steps": steps,
        "cpu_tiny_first_loss": round(result.losses[0], 4),
        "cpu_tiny_final_loss": round(result.losses[-1], 4),
        "cpu_tiny_wall_s": round(wall, 2),
        "cpu_threads": torch.get_num_threads(),
    }


def gpt2_small():
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=50304, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True)
    return GPT2LMHeadModel(config)


def llama_1b():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=50304, hidden_size=2048, intermediate_size=5632, num_hidden_layers=16,
                         num_attention_heads=16, num_key_value_heads=8, max_position_embeddings=2048,
                         tie_word_embeddings=True)
    return LlamaForCausalLM(config)


def _cpu_fsdp_worker(rank: int, world: int, port: int, steps: int, batch: int, seq_len: int, out: str) -> None:
    import os

    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    config = TrainConfig(competition="tiny", out_dir=out, steps=steps, micro_batch_size=batch, seq_len=seq_len,
                         warmup_steps=max(1, steps // 10), log_every=max(1, steps // 4), device="cpu",
                         reference_documents=160, parallelism="fsdp")
    result = train(config, echo=lambda line: None)
    if rank == 0:
        Path(out, "result.json").write_text(json.dumps({"tokens_per_s": result.tokens_per_s}))
    import torch.distributed as dist

    dist.destroy_process_group()


def bench_cpu_fsdp(world: int, steps: int, batch: int, seq_len: int) -> dict:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="bench-fsdp-") as out:
        mp.spawn(_cpu_fsdp_worker, args=(world, port, steps, batch, seq_len, out), nprocs=world, join=True)
        tps = json.loads(Path(out, "result.json").read_text())["tokens_per_s"]
    return {"cpu_fsdp_processes": world, "cpu_fsdp_tokens_per_s": round(tps, 1)}


def bench_gpu(steps: int, batch: int, seq_len: int, compile_model: bool, model_name: str = "124m",
              fsdp: bool = False) -> dict:
    import os

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    torch.backends.cuda.matmul.allow_tf32 = True
    model = (llama_1b() if model_name == "1b" else gpt2_small()).to(device).train()
    n_params = sum(p.numel() for p in model.parameters())
    if fsdp:
        import torch.distributed as dist

        from subnet.miner.sharding import shard_model

        if not dist.is_initialized():
            dist.init_process_group("nccl")
        shard_model(model, device, bf16=True)
    optimizers = make_optimizers(model, TrainConfig(lr=6e-4), device, sharded=fsdp)
    step_model = torch.compile(model) if compile_model else model
    rows = torch.randint(0, 50257, (batch, seq_len + 1), device=device)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = next_token_loss(step_model, rows)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for opt in optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)

    for _ in range(5):  # warm-up (and compilation)
        step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    tokens_per_s = steps * batch * seq_len / seconds
    peak = guess_peak_flops(device)
    return {
        "gpu": torch.cuda.get_device_name(device),
        "gpu_model": model_name,
        "gpu_fsdp": fsdp,
        "gpu_model_params": n_params,
        "gpu_tokens_per_s": round(tokens_per_s, 1),
        "gpu_mfu": round(6 * n_params * tokens_per_s / peak, 4) if peak else None,
        "gpu_peak_flops": peak or None,
        "gpu_batch": [batch, seq_len],
        "gpu_compiled": compile_model,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="CPU training steps of the tiny model")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--gpu-steps", type=int, default=30)
    parser.add_argument("--gpu-batch", type=int, default=16)
    parser.add_argument("--compile", action="store_true", help="torch.compile the GPU model")
    parser.add_argument("--gpu-model", choices=("124m", "1b"), default="124m")
    parser.add_argument("--fsdp", action="store_true", help="shard the GPU model with FSDP2 (run under torchrun)")
    parser.add_argument("--cpu-fsdp", type=int, default=0, help="also train the tiny model over N gloo processes")
    args = parser.parse_args()

    results = {"torch": torch.__version__}
    results.update(bench_cpu_tiny(args.steps, args.batch, args.seq_len))
    print(f"CPU tiny: {results['cpu_tiny_tokens_per_s']:,.0f} tokens/s on {results['cpu_threads']} thread(s)")
    if args.cpu_fsdp > 1:
        results.update(bench_cpu_fsdp(args.cpu_fsdp, args.steps, args.batch, args.seq_len))
        print(f"CPU tiny, FSDP2 over {args.cpu_fsdp} gloo processes: {results['cpu_fsdp_tokens_per_s']:,.0f} tokens/s")
    if torch.cuda.is_available():
        results.update(bench_gpu(args.gpu_steps, args.gpu_batch, 1024, args.compile, args.gpu_model, args.fsdp))
        mfu = results["gpu_mfu"]
        print(f"GPU {results['gpu']}: {results['gpu_tokens_per_s']:,.0f} tokens/s, "
              f"MFU {'unknown' if mfu is None else f'{mfu:.1%}'} ({results['gpu_model_params']:,} params)")
    else:
        print("no GPU: the GPU rows (124M and 1B, with and without FSDP2) are unmeasured")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
