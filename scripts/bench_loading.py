"""Peak memory of checking a model (meta device, headers only) vs loading it fully.

Each step runs in a fresh process, so ru_maxrss (peak resident memory) measures that step alone;
the import baseline is subtracted. Prints one JSON object.

    .venv/bin/python scripts/bench_loading.py [--hidden 512 --layers 8 --vocab 32000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class _AnonSampler:
    """Peak anonymous RSS (heap, not file-backed mmap pages), sampled from /proc every 2 ms.

    ru_maxrss also counts the page cache of safetensors files mapped while loading, which the
    kernel can drop at will; anonymous memory is what the load really allocates.
    """

    def __init__(self) -> None:
        import threading

        self.peak = self.start = self._read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _read() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._read())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._read())


def _competition():
    from subnet.competitions import Competition

    return Competition(
        id="bench", tokenizer="builtin:tiny", max_seq_len=512, min_params=1, max_params=10**10,
        max_bytes=10**11, architectures=("LlamaForCausalLM",),
    )


def _prepare(directory: str, hidden: int, layers: int, vocab: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=hidden, intermediate_size=int(hidden * 2.75), num_hidden_layers=layers,
        num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64, vocab_size=vocab,
        max_position_embeddings=2048, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory, safe_serialization=True)


def _step(mode: str, directory: str) -> dict:
    import torch  # noqa: F401  (part of the baseline)
    import transformers  # noqa: F401

    from subnet.hub.loading import check_model_dir, load_model

    transformers.LlamaForCausalLM  # resolve the lazy import before the baseline
    baseline = _peak_mib()
    start = time.perf_counter()
    with _AnonSampler() as anon:
        if mode == "check":
            info = check_model_dir(directory, _competition(), tokenizer_vocab=1)
            n_params = info.n_params
        else:
            model = load_model(directory, _competition(), device="cpu", tokenizer_vocab=1)
            n_params = sum(p.numel() for p in model.parameters())
    return {
        "peak_anon_mib_over_start": round(anon.peak - anon.start, 1),
        "seconds": round(time.perf_counter() - start, 3),
        "peak_mib_over_baseline": round(_peak_mib() - baseline, 1),
        "baseline_mib": round(baseline, 1),
        "n_params": n_params,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32_000)
    parser.add_argument("--step", choices=["prepare", "check", "load"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step == "prepare":
        _prepare(args.dir, args.hidden, args.layers, args.vocab)
        return
    if args.step:
        print(json.dumps(_step(args.step, args.dir)))
        return

    def run(step: str, directory: str) -> str:
        cmd = [sys.executable, __file__, "--step", step, "--dir", directory,
               "--hidden", str(args.hidden), "--layers", str(args.layers), "--vocab", str(args.vocab)]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()

    with tempfile.TemporaryDirectory() as directory:
        run("prepare", directory)
        weights = sum(p.stat().st_size for p in Path(directory).glob("*.safetensors"))
        check = json.loads(run("check", directory).splitlines()[-1])
        load = json.loads(run("load", directory).splitlines()[-1])
    print(json.dumps({
        "model": {"hidden": args.hidden, "layers": args.layers, "vocab": args.vocab,
                  "n_params": check["n_params"], "weights_mib": round(weights / 2**20, 1)},
        "check_meta": check,
        "load_full_cpu_fp32": load,
    }, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
