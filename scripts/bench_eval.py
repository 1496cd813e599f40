#!/usr/bin/env python
"""Benchmark the evaluation engine against a reference scorer in the style of the public subnets.

Both methods score the same model (same seed, same weights) on the same documents; each runs
in a fresh subprocess so its memory can be measured on its own:

- reference: each document alone at batch size 1, full-vocabulary logits, KV cache left on
  (`use_cache=True`), cross-entropy over the full logits, under `torch.no_grad()`;
- engine: subnet.eval.engine.compute_losses (length-bucketed batches, chunked cross-entropy).

Peak memory is the extra memory the scoring needs beyond the loaded model and documents:
on CUDA `torch.cuda.max_memory_allocated()` minus what was allocated before scoring; on CPU
the process's peak resident set (VmHWM, reset through /proc/self/clear_refs just before
scoring, so set-up peaks do not hide it) minus its resident set before scoring. tracemalloc
would miss torch's CPU allocations, and ru_maxrss cannot be reset.

The last line printed is one JSON object. Documents have FineWeb-like lengths (lognormal,
median about 400 tokens, capped at the sequence length) filled with random token ids.
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

H100_BF16_DENSE_FLOPS = 989e12

# Llama-shaped models: (hidden, layers, heads, kv_heads, intermediate, max_seq_len, default vocab)
MODEL_SIZES = {
    "tiny": (256, 4, 4, 4, 768, 256, 4096),  # the 'tiny' competition: seq 256, at most 20M params
    "small": (768, 12, 12, 4, 2048, 1024, 32768),
    "1b": (2048, 16, 32, 8, 8192, 4096, 100352),  # 'b3'-like: gpt-4 tokenizer vocabulary, seq 4096
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-size", choices=sorted(MODEL_SIZES), default="tiny")
    p.add_argument("--docs", type=int, default=96, help="number of documents")
    p.add_argument("--device", default="cpu")
    p.add_argument("--vocab", type=int, default=None, help="vocabulary size (default: the size's own)")
    p.add_argument("--seq-len", type=int, default=None, help="max predicted tokens per document")
    p.add_argument("--token-budget", type=int, default=None, help="engine token budget per batch")
    p.add_argument("--padding-mask", action="store_true", help="engine: pass the padding mask (default: none)")
    p.add_argument("--repeats", type=int, default=2, help="alternating runs per method; the fastest counts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print only the JSON result line")
    p.add_argument("--method", choices=["engine", "reference"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


def build_model(args):
    import torch
    import transformers

    hidden, layers, heads, kv, inter, seq, vocab = MODEL_SIZES[args.model_size]
    config = transformers.LlamaConfig(
        vocab_size=args.vocab or vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv, intermediate_size=inter, max_position_embeddings=max(seq, args.seq_len or 0) + 1,
        tie_word_embeddings=False,
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(args.seed)
    with torch.device(args.device):  # initialise where it runs: fast for 1B on a GPU
        model = transformers.LlamaForCausalLM(config)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    return model.to(device=args.device, dtype=dtype).eval()


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


def reference_losses(model, docs, device: str) -> np.ndarray:
    """What subnets 9 and 29 do: one document at a time, full logits, KV cache left on."""
    import torch
    import torch.nn.functional as F

    out = np.zeros(len(docs))
    with torch.no_grad():
        for i, tokens in enumerate(docs.tokens):
            ids = torch.as_tensor(tokens, device=device)[None]
            logits = model(input_ids=ids, use_cache=True).logits
            shift_logits = logits[..., :-1, :].contiguous().float()
            shift_labels = ids[..., 1:].contiguous()
            loss = F.cross_entropy(shift_logits.view(-1, shift_logits.size(-1)), shift_labels.view(-1), reduction="sum")
            out[i] = loss.item()
    return out


class MemoryMeter:
    """Extra memory used after `start()`: CUDA allocator peak, or peak resident set on CPU."""

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


def run_method(args) -> dict:
    """Inside a fresh subprocess: build, warm up, measure one method."""
    import torch

    from subnet.eval import engine

    model = build_model(args)
    vocab, seq_len = model.config.vocab_size, args.seq_len or MODEL_SIZES[args.model_size][5]
    docs = build_docs(args, vocab, seq_len)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    body_seconds = [0.0]
    if args.method == "engine":
        kwargs = dict(device=args.device, token_budget=args.token_budget, use_padding_mask=args.padding_mask)
        score = lambda d: engine.compute_losses(model, d, **kwargs).nll_sum  # noqa: E731
        _time_body(model.model, body_seconds, sync)
    else:
        score = lambda d: reference_losses(model, d, args.device)  # noqa: E731
    meter = MemoryMeter(args.device)
    meter.start()
    score(docs.subset(range(min(4, len(docs)))))  # warm-up (kernels, allocator)
    body_seconds[0] = 0.0
    sync()
    started, cpu_started = time.perf_counter(), time.process_time()
    nll = score(docs)
    sync()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    n_params = sum(p.numel() for p in model.parameters())
    lengths = np.array([len(t) for t in docs.tokens])
    return {
        "nll": nll.tolist(),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "body_seconds": body_seconds[0],
        "predicted_tokens": int(docs.n_predicted.sum()),
        "input_tokens": int(lengths.sum()),
        "peak_mem_bytes": int(meter.peak_extra()),
        "params": int(n_params),
        "vocab": int(vocab),
        "seq_len": int(seq_len),
        "threads": torch.get_num_threads(),
    }


def _time_body(body, total: list, sync) -> None:
    """Accumulate the time spent in the model body (transformer layers), to split engine time."""
    start = [0.0]

    def before(*_):
        sync()
        start[0] = time.perf_counter()

    def after(*_):
        sync()
        total[0] += time.perf_counter() - start[0]

    body.register_forward_pre_hook(before)
    body.register_forward_hook(after)


def run_in_subprocess(method: str, argv: list[str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--method", method]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        raise SystemExit(f"{method} run failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def padding_efficiency(args, result: dict) -> float:
    """Real tokens / computed tokens (rows x longest row) over the engine's batches."""
    from subnet.eval.batching import plan_batches
    from subnet.eval.engine import default_token_budget

    docs = build_docs(args, result["vocab"], result["seq_len"])
    lengths = [len(t) for t in docs.tokens]
    batches = plan_batches(lengths, args.token_budget or default_token_budget(args.device))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return sum(lengths[i] for b in batches for i in b) / max(padded, 1)


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.method:
        print(json.dumps(run_method(args)))
        return
    child_argv = [a for a in argv if a != "--json"]
    # Alternate the methods and keep each one's fastest run: other load on the machine hits both.
    runs = {"reference": [], "engine": []}
    for _ in range(max(1, args.repeats)):
        for method in runs:
            runs[method].append(run_in_subprocess(method, child_argv))
    ref, eng = (min(runs[m], key=lambda r: r["seconds"]) for m in ("reference", "engine"))
    a, b = np.array(eng["nll"]), np.array(ref["nll"])
    rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-12)
    result = {
        "device": args.device,
        "model_size": args.model_size,
        "params": eng["params"],
        "vocab": eng["vocab"],
        "seq_len": eng["seq_len"],
        "docs": args.docs,
        "predicted_tokens": eng["predicted_tokens"],
        "threads": eng["threads"],
        "tokens_per_s": eng["predicted_tokens"] / eng["seconds"],
        "reference_tokens_per_s": ref["predicted_tokens"] / ref["seconds"],
        "speedup": ref["seconds"] / eng["seconds"],
        "seconds": eng["seconds"],
        "reference_seconds": ref["seconds"],
        # CPU time of the scoring process: on a shared machine a steadier measure of work than wall time
        "cpu_speedup": ref["cpu_seconds"] / eng["cpu_seconds"],
        "engine_body_fraction": eng["body_seconds"] / eng["seconds"],
        "padding_efficiency": padding_efficiency(args, eng),
        "peak_mem_bytes": eng["peak_mem_bytes"],
        "reference_peak_mem_bytes": ref["peak_mem_bytes"],
        "max_rel_diff": float(np.nanmax(rel)) if len(rel) else 0.0,
        "all_finite": bool(np.isfinite(a).all() and np.isfinite(b).all()),
    }
    if args.device.startswith("cuda"):
        for name, r in (("mfu", eng), ("reference_mfu", ref)):
            result[name] = 2 * r["params"] * r["input_tokens"] / r["seconds"] / H100_BF16_DENSE_FLOPS
    if not args.json:
        for key, value in result.items():
            print(f"{key:>26}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
