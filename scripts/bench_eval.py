#!/usr/bin/env python
"""Benchmark the evaluation engine side by side with two full-logits reference scorers.

Every method scores the same random-init Llama (same seed, built locally, no download) on the
same FineWeb-like documents (lognormal lengths, median about 400 tokens, capped at the
sequence length), each in a fresh subprocess so its memory is measured on its own:

- engine:  subnet.eval.engine.compute_losses (packed or padded layout, chunked/fused CE);
- batch1:  each document alone at batch size 1, full-vocabulary float32 logits, KV cache on
           (`use_cache=True`), as subnet 9 / subnet 29 validators score;
- padded:  length-sorted right-padded batches under the same token budget, attention mask
           passed, full float32 logits, as common evaluation harnesses score;
- sliced:  (opt-in, `--methods engine,sliced`) the engine's sums with the model saved as safetensors
           and streamed a slice of layers at a time (subnet/eval/sliced.py); slices sized as the
           validator sizes them for `--device-memory` GB, or `--slice-layers` layers each.

On CUDA the model runs in bf16 and a float32 batch-size-1 run gives the reference losses; on
CPU everything is float32 and batch1 is the reference. Printed per method: tokens/s, model
FLOP utilisation against the device's bf16 dense peak (CUDA only; FLOPs counted once for the
work a document needs: 2 x matmul parameters per token plus causal attention), extra peak
memory (CUDA allocator peak, or the peak resident set on CPU), and the max relative
difference of per-document losses from the float32 reference. Methods alternate over
`--repeats` runs; the median time counts (the machine may be shared). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Llama-shaped models: (hidden, layers, heads, kv_heads, intermediate, max_seq_len, default vocab)
MODEL_SIZES = {
    "tiny": (256, 4, 4, 4, 768, 256, 4096),  # the 'tiny' competition: seq 256, at most 20M params
    "small": (768, 12, 12, 4, 2048, 1024, 32768),
    "1b": (2048, 16, 32, 8, 8192, 4096, 100352),  # gpt-4 tokenizer vocabulary, seq 4096
    "3b": (3072, 26, 24, 8, 8192, 4096, 100352),  # 'b3'-shaped: 3.2B parameters
}
METHODS = ("engine", "batch1", "padded", "sliced")
DEFAULT_METHODS = "engine,batch1,padded"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-size", choices=sorted(MODEL_SIZES), default="tiny")
    p.add_argument("--docs", type=int, default=96, help="number of documents")
    p.add_argument("--device", default="cpu")
    p.add_argument("--vocab", type=int, default=None, help="vocabulary size (default: the size's own)")
    p.add_argument("--seq-len", type=int, default=None, help="max predicted tokens per document")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads in each scorer")
    p.add_argument("--token-budget", type=int, default=None, help="tokens per forward pass (engine and padded)")
    p.add_argument("--layout", choices=["auto", "packed", "padded"], default="auto", help="engine layout")
    p.add_argument("--chunk-tokens", type=int, default=None, help="engine: tokens per vocabulary chunk")
    p.add_argument("--attn", default="sdpa", help="attention implementation, e.g. sdpa or flash_attention_2")
    p.add_argument("--methods", default=DEFAULT_METHODS, help="comma-separated subset of " + ",".join(METHODS))
    p.add_argument("--device-memory", type=float, default=None,
                   help="sliced: the device memory in GB its slices are sized for (default: this device's)")
    p.add_argument("--slice-layers", type=int, default=None, help="sliced: decoder layers per slice")
    p.add_argument("--repeats", type=int, default=3, help="alternating runs per method; the median counts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print only the JSON result line")
    p.add_argument("--method", choices=[*METHODS, "float32"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


def build_model(args, dtype=None):
    """A random-init Llama built as the validator's loader builds one: in `dtype` on the device through
    `_from_config`, so RoPE's inv_freq stays float32 (`.to(bfloat16)` would round it: cos at position
    4095 was off by 0.59). flash-attention takes half precision only: a float32 model keeps SDPA."""
    import torch
    import transformers

    hidden, layers, heads, kv, inter, seq, vocab = MODEL_SIZES[args.model_size]
    config = transformers.LlamaConfig(
        vocab_size=args.vocab or vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv, intermediate_size=inter, max_position_embeddings=max(seq, args.seq_len or 0) + 1,
        tie_word_embeddings=False,
    )
    dtype = dtype or (torch.bfloat16 if args.device.startswith("cuda") else torch.float32)
    attn = args.attn if dtype != torch.float32 or not args.attn.startswith("flash") else "sdpa"
    torch.manual_seed(args.seed)
    with torch.device(args.device):  # initialise where it runs: fast for 1B on a GPU
        model = transformers.LlamaForCausalLM._from_config(config, dtype=dtype, attn_implementation=attn)
    return model.eval()


def build_docs(args, vocab: int, seq_len: int):
    from subnet.data.types import TokenizedDocuments

    rng = np.random.default_rng(args.seed)
    raw = np.maximum(2, rng.lognormal(mean=np.log(400), sigma=1.0, size=args.docs).astype(np.int64))
    lengths = np.minimum(raw, seq_len + 1)
    tokens = [rng.integers(0, vocab, size=int(n), dtype=np.int64) for n in lengths]
    return TokenizedDocuments(
        doc_ids=[str(i) for i in range(args.docs)], tokens=tokens,
        n_bytes=lengths * 4, truncated=raw > seq_len + 1,
    )


def batch1_losses(model, docs, device: str) -> np.ndarray:
    """Subnet 9 / 29 style: one document at a time, full float32 logits, KV cache left on."""
    import torch
    import torch.nn.functional as F

    out = np.zeros(len(docs))
    with torch.no_grad():
        for i, tokens in enumerate(docs.tokens):
            if len(tokens) < 2:
                continue
            ids = torch.as_tensor(tokens, device=device)[None]
            logits = model(input_ids=ids, use_cache=True).logits[0, :-1].float()
            out[i] = F.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
    return out


def padded_losses(model, docs, device: str, token_budget: int) -> np.ndarray:
    """Evaluation-harness style: length-sorted padded batches, attention mask, full float32 logits."""
    import torch
    import torch.nn.functional as F

    from subnet.eval.batching import pad_right, plan_batches

    out = np.zeros(len(docs))
    with torch.no_grad():
        for batch in plan_batches([len(t) for t in docs.tokens], token_budget):
            ids, mask, lengths = pad_right([docs.tokens[i] for i in batch])
            ids, mask = ids.to(device), mask.to(device)
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1].float()
            nll = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none") * mask[:, 1:]
            out[batch] = nll.double().sum(1).cpu().numpy()
    return out


class MemoryMeter:
    """Extra memory used after `start()`: CUDA allocator peak, or peak resident set on CPU.

    On CPU the peak resident set (VmHWM) is reset through /proc/self/clear_refs just before
    scoring; tracemalloc would miss torch's allocations and ru_maxrss cannot be reset."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")

    def start(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current resident set
            self.base = _proc_status_kb("VmRSS") * 1024

    def peak_extra(self) -> int:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - self.base
        return _proc_status_kb("VmHWM") * 1024 - self.base


def _proc_status_kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def model_flops(model, lengths: np.ndarray) -> float:
    """FLOPs a forward pass needs for these documents: 2 per matmul parameter per token (the
    input embedding is a lookup) plus causal attention (QK^T and AV: 2 x 2 x L^2/2 x hidden per layer)."""
    cfg = model.config
    matmul_params = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
    attention = 2 * cfg.num_hidden_layers * cfg.hidden_size * float((lengths.astype(np.float64) ** 2).sum())
    return 2.0 * matmul_params * float(lengths.sum()) + attention


def run_method(args) -> dict:
    """Inside a fresh subprocess: build, warm up, measure one method."""
    import torch

    from subnet.eval import engine

    from subnet.devices import device_name, prepare_device

    if args.threads:
        torch.set_num_threads(args.threads)
    prepare_device(args.device)  # the validator's numerics (no reduced-precision reductions)
    cuda = args.device.startswith("cuda")
    model = build_model(args, dtype=torch.float32 if args.method == "float32" else None)
    vocab, seq_len = model.config.vocab_size, args.seq_len or MODEL_SIZES[args.model_size][5]
    docs = build_docs(args, vocab, seq_len)
    budget = args.token_budget or engine.default_token_budget(args.device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sliced_stats = None
    if args.method == "sliced":
        from subnet.eval.sliced import compute_losses_sliced

        sliced = sliced_from(model, args)
        model = sliced.model  # the meta-device skeleton: the weights stay in the files until their slice runs
        kwargs = dict(token_budget=args.token_budget, layout=args.layout, chunk_tokens=args.chunk_tokens)
        score = lambda d: compute_losses_sliced(sliced, d, **kwargs).nll_sum  # noqa: E731
        sliced_stats = sliced.stats
    elif args.method == "engine":
        kwargs = dict(device=args.device, token_budget=args.token_budget, layout=args.layout,
                      chunk_tokens=args.chunk_tokens)
        score = lambda d: engine.compute_losses(model, d, **kwargs).nll_sum  # noqa: E731
    elif args.method == "padded":
        score = lambda d: padded_losses(model, d, args.device, budget)  # noqa: E731
    else:  # batch1, and the float32 reference on CUDA
        score = lambda d: batch1_losses(model, d, args.device)  # noqa: E731
    meter = MemoryMeter(args.device)
    meter.start()
    score(docs.subset(range(min(4, len(docs)))))  # warm-up (kernels, allocator)
    sync()
    started, cpu_started = time.perf_counter(), time.process_time()
    nll = score(docs)
    sync()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    lengths = np.array([len(t) for t in docs.tokens])
    return {
        "nll": nll.tolist(),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "predicted_tokens": int(docs.n_predicted.sum()),
        "flops": model_flops(model, lengths),
        "peak_mem_bytes": int(meter.peak_extra()),
        "params": int(sum(p.numel() for p in model.parameters())),
        "vocab": int(vocab),
        "seq_len": int(seq_len),
        "threads": torch.get_num_threads(),
        "device_name": device_name(args.device),  # this device's own name (cuda:1 is not cuda:0)
        # What actually ran: the engine may switch its model to flash-attention 2; references keep theirs.
        "attn": str(model.config._attn_implementation),
        "base_mem_bytes": int(meter.base),  # resident at the start: the weights on CUDA (none when sliced)
        "sliced": None if sliced_stats is None else {
            "slices": sliced_stats.slices, "layers_per_slice": sliced_stats.layers_per_slice,
            "largest_slice_bytes": sliced_stats.largest_slice_bytes,
            "host_state_bytes": sliced_stats.host_state_bytes},
    }


def sliced_from(model, args):
    """The model saved as safetensors in a temporary directory and reopened as a SlicedModel."""
    import atexit
    import gc
    import shutil
    import tempfile

    import torch

    from subnet.eval.sliced import device_memory_bytes
    from subnet.eval.sliced_model import SlicedModel

    directory = Path(tempfile.mkdtemp(prefix="bench-sliced-"))
    atexit.register(shutil.rmtree, directory, True)  # this subprocess ends after one method
    model.save_pretrained(directory, safe_serialization=True)
    cls, config, dtype = type(model), model.config, next(model.parameters()).dtype
    layer_bytes = sum(p.numel() * p.element_size() for p in model.model.layers[0].parameters())
    del model
    gc.collect()
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    if args.slice_layers:
        slice_bytes = args.slice_layers * layer_bytes
    else:
        memory = device_memory_bytes(args.device, int(args.device_memory * 1e9) if args.device_memory else None)
        slice_bytes = int(0.35 * memory) if memory else layer_bytes  # Competition.slice_above_share's default
    return SlicedModel(cls, config, sorted(directory.glob("*.safetensors")), torch.device(args.device), dtype,
                       slice_bytes)


def run_in_subprocess(method: str, argv: list[str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--method", method]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        raise SystemExit(f"{method} run failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bf16_peak(device_name: str) -> float | None:
    from subnet.devices import bf16_peak_flops

    return bf16_peak_flops(device_name)


def summarise(method: str, runs: list[dict], reference: np.ndarray) -> dict:
    seconds = float(np.median([r["seconds"] for r in runs]))
    first = runs[0]
    nll = np.array(first["nll"])
    rel = np.abs(nll - reference) / np.maximum(np.abs(reference), 1e-12)
    peak = bf16_peak(first["device_name"])
    return {
        "method": method,
        "attn": first.get("attn"),
        "seconds": seconds,
        "seconds_runs": [round(r["seconds"], 4) for r in runs],
        # CPU time of the scoring process: on a shared machine a steadier measure of work than wall time
        "cpu_seconds": float(np.median([r["cpu_seconds"] for r in runs])),
        "tokens_per_s": first["predicted_tokens"] / seconds,
        "mfu": first["flops"] / seconds / peak if peak else None,
        "peak_mem_bytes": max(r["peak_mem_bytes"] for r in runs),
        "peak_total_bytes": max(r["peak_mem_bytes"] + r.get("base_mem_bytes", 0) for r in runs),
        "sliced": first.get("sliced"),
        "max_rel_diff": float(np.nanmax(rel)) if len(rel) else 0.0,
        "mean_rel_diff": float(abs(nll.sum() - reference.sum()) / max(abs(reference.sum()), 1e-12)),
        "all_finite": bool(np.isfinite(nll).all()),
    }


def with_device(argv: list[str], device: str) -> list[str]:
    """argv with its --device replaced by `device` (the subprocesses must all use the same indexed one)."""
    out, skip = [], False
    for arg in argv:
        if skip or arg.startswith("--device="):
            skip = False
            continue
        skip = arg == "--device"
        if not skip:
            out.append(arg)
    return [*out, "--device", device]


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    from subnet.devices import resolve_device

    args.device = resolve_device(args.device)  # cuda -> cuda:N, the one every subprocess uses
    argv = with_device(argv, args.device)
    if args.method:
        print(json.dumps(run_method(args)))
        return
    methods = [m for m in args.methods.split(",") if m]
    if not set(methods) <= set(METHODS):
        raise SystemExit(f"--methods: unknown {sorted(set(methods) - set(METHODS))}")
    child_argv = [a for a in argv if a != "--json"]
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    for _ in range(max(1, args.repeats)):  # alternate: other load on the machine hits every method
        for method in methods:
            runs[method].append(run_in_subprocess(method, child_argv))
    cuda = args.device.startswith("cuda")
    reference_method = "batch1"
    if cuda:
        reference = np.array(run_in_subprocess("float32", child_argv)["nll"])
    else:
        reference_method = "batch1" if "batch1" in runs else methods[0]
        reference = np.array(runs[reference_method][0]["nll"])  # float32 on CPU already
    rows = [summarise(m, runs[m], reference) for m in methods]
    first = runs[methods[0]][0]
    result = {
        "device": first["device_name"], "model_size": args.model_size, "params": first["params"],
        "vocab": first["vocab"], "seq_len": first["seq_len"], "docs": args.docs,
        "predicted_tokens": first["predicted_tokens"], "threads": first["threads"],
        "layout": args.layout, "reference": "float32 batch1" if cuda else f"{reference_method} (float32)",
        "methods": rows,
    }
    by = {r["method"]: r for r in rows}
    for other in ("batch1", "padded", "sliced"):
        if "engine" in by and other in by:
            result[f"speedup_vs_{other}"] = by[other]["seconds"] / by["engine"]["seconds"]
            result[f"cpu_time_speedup_vs_{other}"] = by[other]["cpu_seconds"] / by["engine"]["cpu_seconds"]
    if not args.json:
        print(f"{result['device']}, {args.model_size} Llama, {result['params'] / 1e6:.1f}M params, vocab {result['vocab']},"
              f" {args.docs} docs, {result['predicted_tokens']} predicted tokens, {result['threads']} threads")
        print(f"{'method':>8} {'attention':>18} {'tokens/s':>10} {'MFU':>7} {'peak MB':>9} {'total MB':>9}"
              f" {'max rel diff':>13}")
        for r in rows:
            mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
            print(f"{r['method']:>8} {r['attn']:>18} {r['tokens_per_s']:>10.0f} {mfu:>7}"
                  f" {r['peak_mem_bytes'] / 1e6:>9.1f} {r['peak_total_bytes'] / 1e6:>9.1f} {r['max_rel_diff']:>13.2e}")
            if r["sliced"]:
                st = r["sliced"]
                print(f"{'':>8} {st['slices']} slices of {st['layers_per_slice']} layers, largest"
                      f" {st['largest_slice_bytes'] / 1e6:.1f} MB; hidden states on the host"
                      f" {st['host_state_bytes'] / 1e6:.1f} MB")
        for other in ("batch1", "padded", "sliced"):
            if f"speedup_vs_{other}" in result:
                print(f"engine vs {other}: {result[f'speedup_vs_{other}']:.2f}x wall time,"
                      f" {result[f'cpu_time_speedup_vs_{other}']:.2f}x CPU time")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
