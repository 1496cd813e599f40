"""A generator of hostile model repos, each tiny, each built from one honest model by one twist.

Every case names the reason a validator must record for it (and `subnet model check` must print).
The classes: file-level tricks (pickles, symlinks, special files, non-UTF-8 names, too many files),
JSON bombs in config.json, the shard index and the safetensors header (huge integers, deep nesting,
non-finite numbers, duplicate keys, oversize documents), headers that lie about their data
(overlapping, gapped or mis-sized spans, odd dtypes and shapes), configs that break the model
builder, and a model that loads but scores NaN on every document.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.validator_fixtures import E2E_COMPETITION

NAN_REASON = "no finite loss"  # what the validator records (and model check prints) for all-NaN losses
_DEEP = 100_000  # far past Python's recursion limit


@dataclass(frozen=True)
class HostileCase:
    name: str
    reason: str  # the reason code recorded on the model, or a phrase of the scoring failure
    build: Callable[[Path], None]  # mutates a copy of the honest model in place
    scored: bool = False  # only scoring reveals it (the checks pass)


def honest_model(directory: Path, seed: int = 0) -> Path:
    """A tiny untrained Llama that the e2e competition accepts (config.json + model.safetensors only)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from subnet.data.tokenizer import load_tokenizer

    torch.manual_seed(seed)
    tok = load_tokenizer(E2E_COMPETITION.tokenizer)
    config = LlamaConfig(
        vocab_size=-(-len(tok) // 64) * 64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, intermediate_size=64, max_position_embeddings=E2E_COMPETITION.max_seq_len,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(directory, safe_serialization=True)
    for extra in Path(directory).iterdir():
        if extra.name not in ("config.json", "model.safetensors"):
            extra.unlink()
    return Path(directory)


# ----------------------------------------------------------------------------- raw file helpers


def _read_st(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _write_st(path: Path, header: dict | bytes, data: bytes, *, length: int | None = None) -> None:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)


def _edit_header(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def build(d: Path) -> None:
        header, data = _read_st(d / "model.safetensors")
        edit(header)
        _write_st(d / "model.safetensors", header, data)
    return build


def _raw_header(make: Callable[[dict], bytes]) -> Callable[[Path], None]:
    def build(d: Path) -> None:
        header, data = _read_st(d / "model.safetensors")
        _write_st(d / "model.safetensors", make(header), data)
    return build


def _tensors(header: dict) -> list[str]:
    return sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])


def _edit_config(**changes) -> Callable[[Path], None]:
    def build(d: Path) -> None:
        config = json.loads((d / "config.json").read_text())
        config.update(changes)
        (d / "config.json").write_text(json.dumps(config))
    return build


def _raw_config(make: Callable[[str], bytes]) -> Callable[[Path], None]:
    """config.json rewritten as raw bytes: `make` gets the honest text without its closing brace."""
    def build(d: Path) -> None:
        text = (d / "config.json").read_text().rstrip().rstrip("}")
        (d / "config.json").write_bytes(make(text))
    return build


def _index(make_map: Callable[[dict], dict | bytes]) -> Callable[[Path], None]:
    def build(d: Path) -> None:
        header, _ = _read_st(d / "model.safetensors")
        made = make_map({name: "model.safetensors" for name in _tensors(header)})
        raw = made if isinstance(made, bytes) else json.dumps({"metadata": {}, "weight_map": made}).encode()
        (d / "model.safetensors.index.json").write_bytes(raw)
    return build


def _shift(header: dict, name: str, by: int) -> None:
    begin, end = header[name]["data_offsets"]
    header[name]["data_offsets"] = [begin + by, end + by]


def _overlap(header: dict) -> None:
    names = _tensors(header)
    _shift(header, names[1], -4)  # the second tensor starts inside the first


def _gap(header: dict) -> None:
    names = _tensors(header)
    for name in names[1:]:
        _shift(header, name, 4)  # 4 unused bytes after the first tensor, so the last ends past the data


def _nan_weights(d: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(d / "model.safetensors")
    save_file({k: v.clone().fill_(float("nan")) for k, v in tensors.items()}, d / "model.safetensors",
              metadata={"format": "pt"})


def _symlink(target: str, name: str) -> Callable[[Path], None]:
    def build(d: Path) -> None:
        path = d / name
        if path.exists():
            path.unlink()
        path.symlink_to(target)
    return build


def _many_files(d: Path) -> None:
    for i in range(300):
        (d / f"notes-{i:04d}.md").write_text("x")


def _write(name: str | bytes, content: bytes = b"{}") -> Callable[[Path], None]:
    def build(d: Path) -> None:
        path = os.path.join(os.fsencode(d), name if isinstance(name, bytes) else name.encode())
        with open(path, "wb") as f:
            f.write(content)
    return build


def _deep(depth: int = _DEEP) -> str:
    return "[" * depth + "]" * depth


def _many_values(n: int = 20_000) -> str:
    """Cheap text, costly objects: 3 bytes each, about 64 bytes of Python objects each."""
    return "[" + ",".join(["[]"] * n) + "]"


CASES: tuple[HostileCase, ...] = (
    # ---- files
    HostileCase("pickle", "forbidden_files", _write("pytorch_model.bin", b"\x80\x04\x95 pickle")),
    HostileCase("too_many_files", "too_many_files", _many_files),
    HostileCase("symlink_weights", "forbidden_files", _symlink("/etc/passwd", "model.safetensors")),
    HostileCase("symlink_dir", "forbidden_files", _symlink("/etc", "extra")),
    HostileCase("fifo", "forbidden_files", lambda d: os.mkfifo(d / "notes.md")),
    HostileCase("non_utf8_name", "bad_listing", _write(b"\xff\xfe-notes.json")),
    HostileCase("no_weights", "no_safetensors", lambda d: (d / "model.safetensors").unlink()),
    # ---- config.json
    HostileCase("config_int_digits", "bad_config", _raw_config(lambda t: f'{t}, "rope_theta": {"9" * 5000}}}'.encode())),
    HostileCase("config_deep", "bad_config", _raw_config(lambda t: f'{t}, "x": {_deep()}}}'.encode())),
    HostileCase("config_infinite", "bad_config", _raw_config(lambda t: f'{t}, "rope_theta": 1e999}}'.encode())),
    HostileCase("config_nan", "bad_config", _raw_config(lambda t: f'{t}, "initializer_range": NaN}}'.encode())),
    HostileCase("config_value_bomb", "bad_config", _raw_config(lambda t: f'{t}, "pad": {_many_values()}}}'.encode())),
    HostileCase("config_oversize", "bad_config", _raw_config(lambda t: f'{t}, "pad": "{"x" * (1 << 20)}"}}'.encode())),
    HostileCase("config_not_utf8", "bad_config", _raw_config(lambda t: t.encode() + b', "x": "\xff\xfe"}')),
    HostileCase("config_duplicate_key", "bad_config", _raw_config(lambda t: f'{t}, "hidden_size": 4096}}'.encode())),
    HostileCase("config_not_object", "bad_config", _write("config.json", b"[1, 2, 3]")),
    HostileCase("config_string_number", "bad_config", _edit_config(hidden_size="32")),
    HostileCase("config_float_number", "bad_config", _edit_config(num_hidden_layers=2.0)),
    HostileCase("config_bool_number", "bad_config", _edit_config(vocab_size=True)),
    HostileCase("config_zero_heads", "bad_config", _edit_config(num_attention_heads=0)),
    HostileCase("config_auto_map", "remote_code", _edit_config(auto_map={"AutoModel": "evil.Model"})),
    HostileCase("config_remote_kernel", "remote_code", _edit_config(attn_implementation="kernels-community/evil")),
    HostileCase("config_huge_vocab", "too_many_params", _edit_config(vocab_size=10**12)),
    HostileCase("config_architecture", "architecture", _edit_config(architectures=["EvilForCausalLM"])),
    # ---- safetensors header: JSON bombs
    HostileCase("header_int_digits", "weights_mismatch",
                _raw_header(lambda h: json.dumps(h).encode()[:-1] + b', "__metadata__": {"a": ' + b"9" * 5000 + b"}}")),
    HostileCase("header_deep_metadata", "weights_mismatch",
                _raw_header(lambda h: json.dumps(h).encode()[:-1] + b', "__metadata__": ' + _deep().encode() + b"}")),
    HostileCase("header_infinite", "weights_mismatch",
                _raw_header(lambda h: json.dumps(h).encode().replace(b'"data_offsets": [0,', b'"data_offsets": [1e999,', 1))),
    HostileCase("header_value_bomb", "weights_mismatch",
                _raw_header(lambda h: json.dumps(h).encode()[:-1] + b', "__metadata__": ' + _many_values().encode() + b"}")),
    HostileCase("header_duplicate_key", "weights_mismatch",
                _raw_header(lambda h: json.dumps(h).encode()[:-1] + b', "__metadata__": {}, "__metadata__": {}}')),
    HostileCase("header_length_claim", "weights_mismatch",
                lambda d: _write_st(d / "model.safetensors", *_read_st(d / "model.safetensors"), length=200_000_000)),
    HostileCase("header_over_model_cap", "weights_mismatch",
                _edit_header(lambda h: h.setdefault("__metadata__", {}).update(pad="x" * (1 << 20)))),
    HostileCase("header_not_object", "weights_mismatch", _raw_header(lambda h: b"[" + json.dumps(h).encode() + b"]")),
    HostileCase("header_metadata_not_strings", "weights_mismatch", _edit_header(lambda h: h.update(__metadata__={"a": 1}))),
    # ---- safetensors header: lies about the data
    HostileCase("header_overlap", "weights_mismatch", _edit_header(_overlap)),
    HostileCase("header_gap", "weights_mismatch", _edit_header(_gap)),
    HostileCase("header_dtype_span", "weights_mismatch", _edit_header(lambda h: h[_tensors(h)[0]].update(dtype="F16"))),
    HostileCase("header_unknown_dtype", "weights_mismatch", _edit_header(lambda h: h[_tensors(h)[0]].update(dtype="Q4"))),
    HostileCase("header_string_shape", "weights_mismatch",
                _edit_header(lambda h: h[_tensors(h)[0]].update(shape=[str(x) for x in h[_tensors(h)[0]]["shape"]]))),
    HostileCase("header_float_shape", "weights_mismatch",
                _edit_header(lambda h: h[_tensors(h)[0]].update(shape=[float(x) for x in h[_tensors(h)[0]]["shape"]]))),
    HostileCase("header_extra_field", "weights_mismatch", _edit_header(lambda h: h[_tensors(h)[0]].update(offsets=[0, 0]))),
    HostileCase("header_reversed_offsets", "weights_mismatch",
                _edit_header(lambda h: h[_tensors(h)[0]].update(data_offsets=h[_tensors(h)[0]]["data_offsets"][::-1]))),
    HostileCase("weights_truncated", "weights_mismatch",
                lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:-100])),
    HostileCase("weights_empty", "weights_mismatch", _write("model.safetensors", b"")),
    # ---- the shard index
    HostileCase("index_int_digits", "no_safetensors",
                _index(lambda m: b'{"metadata": {"total_size": ' + b"9" * 5000 + b'}, "weight_map": {}}')),
    HostileCase("index_deep", "no_safetensors", _index(lambda m: b'{"weight_map": ' + _deep().encode() + b"}")),
    HostileCase("index_value_bomb", "no_safetensors",
                _index(lambda m: b'{"metadata": ' + _many_values().encode() + b', "weight_map": ' + json.dumps(m).encode() + b"}")),
    HostileCase("index_infinite", "no_safetensors",
                _index(lambda m: b'{"metadata": {"total_size": -1e999}, "weight_map": ' + json.dumps(m).encode() + b"}")),
    HostileCase("index_oversize", "no_safetensors",
                _index(lambda m: json.dumps({"metadata": {"pad": "x" * (1 << 20)}, "weight_map": m}).encode())),
    HostileCase("index_escape_path", "no_safetensors", _index(lambda m: {k: "../../../etc/x.safetensors" for k in m})),
    HostileCase("index_wrong_shard", "weights_mismatch",
                lambda d: (shutil.copyfile(d / "model.safetensors", d / "model-2.safetensors"),
                           _index(lambda m: {**m, next(iter(m)): "model-2.safetensors"})(d))),
    # ---- loads, but every document scores NaN
    HostileCase("nan_weights", NAN_REASON, _nan_weights, scored=True),
)


def build_case(case: HostileCase, honest: Path, root: Path) -> Path:
    """A copy of `honest` under `root/<case name>` with the case's twist applied."""
    target = Path(root) / case.name
    shutil.copytree(honest, target)
    case.build(target)
    return target
