#!/usr/bin/env python
"""One-shot check of the evaluation engine on a GPU: exactness, speed, memory, kernels, agreement.

    python scripts/gpu_check.py                 # on a GPU machine (one H100 or H200: under 8 minutes)
    python scripts/gpu_check.py --device cpu    # tiny shapes, every check, the same JSON keys (a minute)

Prints progress on stderr and one JSON object on stdout (the last line):
- `exactness`: per architecture (Llama, Qwen2, Gemma 2 at b3 size: about 3.2B, 3.2B and 2.3B parameters,
  vocabulary 100,352, documents up to 4,096 tokens), the engine's largest and mean relative difference per
  document from a float32 batch-size-1 full-logits reference with the same (bf16-rounded) weights, with the
  engine in float32 and in bf16, and the bf16 packing probe's hidden-state change (its tolerance is 0.1);
- `throughput`: per architecture, tokens/s, MFU (against the device's dense bf16 peak) and peak memory of
  the engine (bf16), a subnet-9-style packed scorer (rows of packed documents, full float32 logits) and a
  subnet-29-style batch-1 scorer (one document at a time, full float32 logits, KV cache on), on the same
  documents;
- `kernels`: what actually ran in the engine: Liger's fused cross-entropy (tokens it scored),
  flash-attention's varlen kernel (calls) and the attention implementation the model ended with;
- `agreement_bf16`: the largest relative difference per document between bf16 runs of the engine in the
  packed and padded layouts and under different token budgets;
- `projected_b3_round_s`: per architecture, the engine's time for 2,400 FineWeb-length documents
  (lognormal lengths, median 400 tokens, at most 4,096) at the measured tokens/s.
The documents are random tokens with FineWeb-like lengths and the models are random-init: speed and
exactness do not depend on what the text says. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

ARCHS = ("llama", "qwen2", "gemma2")
VOCAB, SEQ = 100_352, 4_096
FULL = dict(vocab=VOCAB, seq=SEQ, exact_docs=24, speed_docs=256, agree_docs=128, budgets=(16_384, 65_536))
TINY = dict(vocab=512, seq=128, exact_docs=8, speed_docs=16, agree_docs=16, budgets=(256, 1_024))
ROUND_DOCS = 2_400


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu (cpu: tiny shapes)")
    p.add_argument("--tiny", action="store_true", help="tiny shapes on any device (a quick dry run)")
    p.add_argument("--archs", default=",".join(ARCHS), help="comma-separated subset of " + ",".join(ARCHS))
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def model_config(arch: str, tiny: bool, vocab: int, seq: int):
    """b3-sized configs (hidden 3072 x 26 layers for Llama and Qwen2; Gemma 2 2B's shape), or tiny ones."""
    import transformers

    dims = (dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128) if tiny else
            dict(hidden_size=3072, num_hidden_layers=26, num_attention_heads=24, num_key_value_heads=8,
                 intermediate_size=8192))
    common = dict(vocab_size=vocab, max_position_embeddings=seq + 1, **dims)
    if arch == "llama":
        return transformers.LlamaConfig(tie_word_embeddings=False, **common)
    if arch == "qwen2":
        return transformers.Qwen2Config(tie_word_embeddings=False, **common)
    if not tiny:
        common.update(hidden_size=2304, num_attention_heads=8, num_key_value_heads=4, intermediate_size=9216)
    return transformers.Gemma2Config(head_dim=16 if tiny else 256, final_logit_softcapping=30.0,
                                     attn_logit_softcapping=50.0, sliding_window=seq, **common)


def build(arch: str, shapes: dict, tiny: bool, device: str, seed: int):
    """float32 weights already rounded to bf16, built as the loader builds (RoPE buffers stay float32)."""
    import torch
    import transformers

    config = model_config(arch, tiny, shapes["vocab"], shapes["seq"])
    cls = {"llama": transformers.LlamaForCausalLM, "qwen2": transformers.Qwen2ForCausalLM,
           "gemma2": transformers.Gemma2ForCausalLM}[arch]
    torch.manual_seed(seed)
    with torch.device(device):
        model = cls._from_config(config, dtype=torch.float32, attn_implementation="eager" if arch == "gemma2"
                                 else "sdpa")
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())  # the bf16 run and the reference share their weights
    return model.eval()


def to_bf16(model):
    """Parameters to bf16, buffers (RoPE's inv_freq) left float32, as the validator's loader leaves them."""
    import torch

    for p in model.parameters():
        p.data = p.data.to(torch.bfloat16)
    model.config.dtype = torch.bfloat16
    return model


def documents(n: int, vocab: int, seq: int, seed: int):
    from bench_eval import build_docs

    return build_docs(argparse.Namespace(docs=n, seed=seed), vocab, seq)


def relative(nll: np.ndarray, reference: np.ndarray) -> dict:
    rel = np.abs(nll - reference) / np.maximum(np.abs(reference), 1e-12)
    return {"max_rel": float(np.nanmax(rel)), "mean_rel": float(np.nanmean(rel)), "all_finite": bool(np.isfinite(nll).all())}


class KernelSpy:
    """Counts what the engine really ran: tokens through Liger, calls of flash-attention's varlen kernel."""

    def __init__(self):
        import subnet.eval.engine as engine

        self.reset()
        real = engine.fused_token_nll_fn

        def spy(head, device):
            fused = real(head, device)
            if fused is None:
                return None

            def counted(states, targets):
                self.liger_tokens += int(targets.numel())
                return fused(states, targets)
            return counted

        engine.fused_token_nll_fn = spy
        try:  # flash-attn is installed by hand (it builds against the CUDA toolkit), not by an extra
            flash_attn = importlib.import_module("flash_attn")
            varlen = flash_attn.flash_attn_varlen_func

            def counted_varlen(*args, **kwargs):
                self.varlen_calls += 1
                return varlen(*args, **kwargs)
            flash_attn.flash_attn_varlen_func = counted_varlen  # transformers imports it on first use
        except ImportError:
            pass

    def reset(self) -> None:
        self.liger_tokens, self.varlen_calls = 0, 0

    def report(self, model) -> dict:
        return {"liger_tokens": self.liger_tokens, "liger": self.liger_tokens > 0,
                "flash_varlen_calls": self.varlen_calls, "flash_varlen": self.varlen_calls > 0,
                "attention": str(model.config._attn_implementation)}


def timed(device: str, score):
    """(result, seconds, peak extra memory in bytes) of `score()` on `device`."""
    import torch

    from bench_eval import MemoryMeter

    meter = MemoryMeter(device)
    meter.start()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    started = time.perf_counter()
    result = score()
    sync()
    return result, time.perf_counter() - started, max(0, int(meter.peak_extra()))  # RSS can fall below the start


def packed_full_logits(model, docs, device: str) -> np.ndarray:
    """Subnet-9 style: documents packed into rows (each with its own positions), one row per forward,
    full-vocabulary float32 logits, losses summed per document."""
    import torch
    import torch.nn.functional as F

    from subnet.eval.packing import block_for, pack_rows, plan_packed

    lengths = [len(t) for t in docs.tokens]
    out = np.zeros(len(docs))
    with torch.inference_mode():
        for batch in plan_packed(lengths, block_for(lengths), 1):
            ids, pos, doc_of, predicts = pack_rows(docs.tokens, batch.rows, batch.width)
            logits = model(input_ids=ids.to(device), position_ids=pos.to(device), use_cache=False).logits.float()
            nll = F.cross_entropy(logits[0], torch.roll(ids, -1, 1)[0].to(device), reduction="none").double().cpu()
            np.add.at(out, doc_of[predicts].numpy(), nll[predicts[0]].numpy())
    return out


def check_arch(arch: str, shapes: dict, tiny: bool, device: str, seed: int, peak: float | None,
               spy: KernelSpy) -> dict:
    """Exactness (float32 and bf16 engine against the float32 batch-1 reference), then speed, for one model."""
    import torch

    from bench_eval import batch1_losses, model_flops
    from subnet.eval.engine import compute_losses

    exact_docs = documents(shapes["exact_docs"], shapes["vocab"], shapes["seq"], seed)
    model = build(arch, shapes, tiny, device, seed)
    with torch.inference_mode():
        reference = batch1_losses(model, exact_docs, device)
    exactness = {"float32": relative(compute_losses(model, exact_docs, device=device).nll_sum, reference)}
    model = to_bf16(model)
    spy.reset()
    exactness["bf16"] = relative(compute_losses(model, exact_docs, device=device).nll_sum, reference)
    exactness["probe_bf16_hidden_rel"] = probe_margin(model, exact_docs, device)
    docs = documents(shapes["speed_docs"], shapes["vocab"], shapes["seq"], seed + 1)
    lengths = np.array([len(t) for t in docs.tokens])
    flops, tokens = model_flops(model, lengths), int(docs.n_predicted.sum())
    methods = {"engine": lambda: compute_losses(model, docs, device=device).nll_sum,
               "sn9_packed": lambda: packed_full_logits(model, docs, device),
               "sn29_batch1": lambda: batch1_losses(model, docs, device)}
    speed, results = {}, {}
    compute_losses(model, documents(4, shapes["vocab"], 64, seed + 2), device=device)  # kernels, allocator warm
    for name, score in methods.items():
        results[name], seconds, memory = timed(device, score)
        speed[name] = {"tokens_per_s": tokens / seconds, "seconds": seconds, "peak_mem_bytes": memory,
                       "mfu": flops / seconds / peak if peak else None}
    speed["engine_max_rel_vs_sn29"] = relative(results["engine"], results["sn29_batch1"])["max_rel"]
    kernels = spy.report(model)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return {"exactness": exactness, "throughput": speed, "kernels": kernels}


def probe_margin(model, docs, device: str) -> float:
    """The packing probe's hidden-state change for this model in bf16 (accepted up to 0.1; leaks move 0.6+)."""
    import torch

    from subnet.eval.head import OutputHead
    from subnet.eval.packing import pack_rows

    head = OutputHead.of(model)
    sample = [np.asarray(t[:12]) for t in docs.tokens if len(t) >= 2][:2]
    ids, pos, _, _ = pack_rows(sample, ((0, 1),), sum(len(s) for s in sample))
    with torch.inference_mode():
        packed = head.hidden_states(ids.to(device), None, pos.to(device))[0, len(sample[0]):].float()
        alone = head.hidden_states(torch.as_tensor(sample[1], device=device)[None], None)[0].float()
    return float(((packed - alone).norm(dim=-1) / alone.norm(dim=-1).clamp_min(1e-30)).max())


def agreement(shapes: dict, tiny: bool, device: str, seed: int) -> dict:
    """bf16 losses of one model across layouts and token budgets: how far apart two validators could be."""
    from subnet.eval.engine import compute_losses

    model = to_bf16(build("llama", shapes, tiny, device, seed))
    docs = documents(shapes["agree_docs"], shapes["vocab"], shapes["seq"], seed + 3)
    runs = {f"{layout}@{budget}": compute_losses(model, docs, device=device, layout=layout, token_budget=budget).nll_sum
            for layout in ("packed", "padded") for budget in shapes["budgets"]}
    base = next(iter(runs.values()))
    worst = max(relative(nll, base)["max_rel"] for nll in runs.values())
    return {"runs": sorted(runs), "max_rel_diff": worst, "documents": len(docs)}


def round_tokens(seq: int, seed: int) -> int:
    """Predicted tokens of 2,400 FineWeb-length documents (the b3 round size)."""
    return int(documents(ROUND_DOCS, 2, seq, seed).n_predicted.sum())


def main(argv=None) -> dict:
    import torch
    import transformers

    from subnet.devices import bf16_peak_flops, device_name, prepare_device, resolve_device

    args = parse_args(argv)
    started = time.perf_counter()
    device = resolve_device(args.device)
    prepare_device(device)
    tiny = args.tiny or device == "cpu"
    shapes = TINY if tiny else FULL
    name = device_name(device)
    peak = bf16_peak_flops(name)
    result = {"device": name, "device_index": device, "mode": "tiny" if tiny else "b3",
              "bf16_peak_flops": peak, "versions": versions(torch, transformers), "shapes": shapes,
              "exactness": {}, "throughput": {}, "kernels": {}, "projected_b3_round_s": {}}
    tokens = round_tokens(shapes["seq"], args.seed)
    spy = KernelSpy()
    for arch in [a for a in args.archs.split(",") if a]:
        print(f"gpu_check: {arch} ...", file=sys.stderr, flush=True)
        checked = check_arch(arch, shapes, tiny, device, args.seed, peak, spy)
        for key in ("exactness", "throughput", "kernels"):
            result[key][arch] = checked[key]
        result["projected_b3_round_s"][arch] = tokens / checked["throughput"]["engine"]["tokens_per_s"]
    print("gpu_check: agreement ...", file=sys.stderr, flush=True)
    result["agreement_bf16"] = agreement(shapes, tiny, device, args.seed)
    result["round_tokens"] = tokens
    result["seconds"] = time.perf_counter() - started
    print(json.dumps(result))
    return result


def versions(torch, transformers) -> dict:
    import importlib.metadata as md

    def version(name):
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return None

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "liger_kernel": version("liger-kernel"), "flash_attn": version("flash-attn"),
            "cuda": torch.version.cuda}


if __name__ == "__main__":
    main()
