"""Peak memory of the validator's model check on a repo whose JSON files are all at their caps.

Issue 13: about 100 MB of JSON (a safetensors header's metadata, a shard index) cost 2.9 GB in the
daemon. Now config.json is capped at MAX_CONFIG_BYTES and the index and each header at
`tensor_json_cap(n_tensors)` (64 KiB + 1 KiB per tensor the model has, never above safetensors'
own 100,000,000). This script builds one Llama with `--layers` layers, writes a repo whose
config.json, index and header are each filled to both of its caps (bytes and values) with the
costliest JSON to hold in Python (`[[],[],...]`: 3 bytes of text, about 64 bytes of objects, up
to the value cap, then one long string), and runs the validator's
`fetch_and_check` path (`check_model_dir`) on it in a fresh process, printing peak RSS before and
after. The check must reject the repo, having parsed every file up to its cap.

    python scripts/bench_check_memory.py [--layers 64] [--hidden 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

FILL = [True]  # --no-fill: the same repo with its JSON at honest sizes, for the baseline


def _counted(text: str) -> int:
    """Values as parse_bounded counts them."""
    return 1 + text.count(",") + text.count("[") + text.count("{")


def _fill(base: str, n_bytes: int, n_values: int) -> str:
    """`base` with its '"pad": []' grown to exactly n_bytes and n_values: empty lists (the most
    objects per byte) up to the value cap, then one string for the remaining bytes."""
    lists = max(0, n_values - _counted(base) - 4) // 2  # each '[],' adds a ',' and a '['
    bulk = ",".join(["[]"] * lists)
    if not FILL[0]:
        return base.replace('"pad": []', '"pad": "x"')
    grown = base.replace('"pad": []', '"pad": [' + bulk + ', ""]')
    room = n_bytes - len(grown.encode())
    return grown.replace('""]', '"' + "x" * max(0, room) + '"]')


def build_repo(directory: Path, layers: int, hidden: int) -> dict:
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    from subnet.hub.loading import (
        INDEX_NAME,
        MAX_CONFIG_BYTES,
        MAX_CONFIG_VALUES,
        tensor_json_cap,
    )
    from subnet.hub.safetensors_header import values_cap

    config = LlamaConfig(vocab_size=512, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    directory.mkdir(parents=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    n_tensors = len(state)
    cap, n_values = tensor_json_cap(n_tensors), values_cap(n_tensors)
    # The weights, then the header rewritten to exactly its cap with a metadata filler.
    weights = directory / "model-00001.safetensors"
    save_file(state, str(weights))
    raw = weights.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    text = _fill(json.dumps({**header, "__metadata__": {"pad": []}}), cap, n_values)
    weights.write_bytes(struct.pack("<Q", len(text.encode())) + text.encode() + raw[8 + n :])
    # The index at its cap, valid apart from its bulk.
    index = {"metadata": {"pad": []}, "weight_map": {k: weights.name for k in state}}
    (directory / INDEX_NAME).write_text(_fill(json.dumps(index), cap, n_values))
    # config.json at its cap.
    config_dict = config.to_dict()
    config_dict["architectures"] = ["LlamaForCausalLM"]
    (directory / "config.json").write_text(_fill(json.dumps({**config_dict, "pad": []}), MAX_CONFIG_BYTES,
                                                 MAX_CONFIG_VALUES))
    sizes = {p.name: p.stat().st_size for p in directory.iterdir()}
    values = {INDEX_NAME: _counted((directory / INDEX_NAME).read_text()),
              "config.json": _counted((directory / "config.json").read_text()), "header": _counted(text)}
    return {"n_tensors": n_tensors, "header_cap": cap, "values_cap": n_values, "config_cap": MAX_CONFIG_BYTES,
            "config_values_cap": MAX_CONFIG_VALUES, "sizes": sizes, "values": values}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux: VmHWM), so the peak measured is the check's own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _measure(directory: str, max_params: int) -> None:
    """Child process: peak RSS after imports and a warm-up, then after checking the at-cap repo."""
    from subnet.competitions import Competition
    from subnet.hub.errors import ModelRejected
    from subnet.hub.loading import check_model_dir

    comp = Competition(id="bench", tokenizer="builtin:tiny", max_seq_len=128, min_params=1, max_params=max_params,
                       max_bytes=10**10, architectures=("LlamaForCausalLM",))
    try:
        check_model_dir(Path(directory) / "missing-weights-warmup", comp, tokenizer_vocab=300)
    except (ModelRejected, OSError):
        pass
    reset = _reset_peak()
    before = _status_kib("VmRSS")
    try:
        check_model_dir(directory, comp, tokenizer_vocab=300)
        verdict = "accepted"
    except ModelRejected as e:
        verdict = f"rejected: {e.reason}: {e.detail[:100]}"
    after = _status_kib("VmHWM")
    print(json.dumps({"peak_rss_before_mib": before / 1024, "peak_rss_after_mib": after / 1024,
                      "growth_mib": (after - before) / 1024, "peak_reset": reset, "verdict": verdict}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--no-fill", action="store_true", help="JSON at honest sizes (the baseline)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--max-params", type=int, default=10**9, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _measure(args.child, args.max_params)
        return
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        FILL[0] = not args.no_fill
        info = build_repo(repo, args.layers, args.hidden)
        print(f"repo: {args.layers} layers, {info['n_tensors']} tensors; caps: config.json "
              f"{info['config_cap']:,} B and {info['config_values_cap']:,} values, index and each header "
              f"{info['header_cap']:,} B and {info['values_cap']:,} values")
        print("files:", ", ".join(f"{k} {v:,} B" for k, v in sorted(info["sizes"].items())))
        print("values:", ", ".join(f"{k} {v:,}" for k, v in sorted(info["values"].items())))
        out = subprocess.run([sys.executable, __file__, "--child", str(repo)], capture_output=True, text=True,
                             check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"verdict: {result['verdict']}")
        print(f"daemon-side RSS: {result['peak_rss_before_mib']:.0f} MiB after imports and warm-up, peak "
              f"{result['peak_rss_after_mib']:.0f} MiB during the check (+{result['growth_mib']:.0f} MiB)"
              + ("" if result["peak_reset"] else " [peak since start: VmHWM could not be reset]"))
        print(json.dumps({"filled": not args.no_fill, "layers": args.layers, "n_tensors": info["n_tensors"], "config_cap": info["config_cap"],
                          "json_cap": info["header_cap"], **result}))


if __name__ == "__main__":
    main()
