"""Safe loading: a model directory is checked against its competition before any weight is read.

`check_model_dir` costs almost nothing: it reads config.json, instantiates the architecture on
the meta device (shapes only, no storage) to count parameters, and reads the safetensors
headers (a few kilobytes) to check that tensor names and shapes match. A config asking for a
hidden size of 10^9 or a million layers is refused by a cheap estimate before even the meta
model is built. Nothing here ever sets trust_remote_code or unpickles anything.

`load_model` then builds the model directly on the target device and dtype (no random init) and
copies the tensors in one at a time, each read straight to that device, so peak memory is about
one model plus its largest tensor.
"""

from __future__ import annotations

import errno
import functools
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from subnet.hub.bounded_json import bounded_int, parse_bounded
from subnet.hub.download import FORBIDDEN_SUFFIXES, check_tree, is_safe_path
from subnet.hub.errors import ModelRejected
from subnet.hub.hashing import model_files
from subnet.hub.safetensors_header import (
    LIBRARY_HEADER_CAP,
    TensorSpec,
    read_header,
    read_index,
)

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
MAX_CONFIG_BYTES = 1 << 20  # transformers reads any size; a real config.json is a few KiB
MAX_CONFIG_VALUES = 20_000  # and holds a few hundred values (see bounded_json.parse_bounded)
# The shard index and each safetensors header describe the model's tensors, so their size is
# bounded by the tensor count: this much per tensor (names are short) plus room for metadata.
JSON_BYTES_PER_TENSOR = 1024
JSON_METADATA_BYTES = 64 * 1024
_MAX_DIM = 1 << 40  # any larger size or count is refused as a malformed config, not estimated
_MAX_LAYERS = 1024
# Before building even a meta model, refuse configs whose rough size is this far past the limit.
_ESTIMATE_SLACK = 4.0


@dataclass(frozen=True)
class ModelInfo:
    architecture: str
    n_params: int
    vocab_size: int
    max_position_embeddings: int
    hidden_size: int
    num_layers: int
    weight_files: tuple[str, ...]
    weight_bytes: int


# ----------------------------------------------------------------------------- config


def _read_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    if not path.is_file() or path.is_symlink():
        raise ModelRejected("bad_config", "config.json is missing")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ModelRejected("bad_config", f"config.json is {size:,} bytes, the limit is {MAX_CONFIG_BYTES:,}")
    raw = parse_bounded(path.read_bytes(), what="config.json", reason="bad_config", max_bytes=MAX_CONFIG_BYTES,
                        max_values=MAX_CONFIG_VALUES)
    if not isinstance(raw, dict):
        raise ModelRejected("bad_config", "config.json is not a JSON object")
    return raw


_SAFE_IMPLEMENTATIONS = {None, "eager", "sdpa"}


def _implementation_choices(raw: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every `*implementation*` setting in a config, nested ones included."""
    found: list[tuple[str, Any]] = []
    if isinstance(raw, dict):
        for key, value in raw.items():
            where = f"{path}{key}"
            if "implementation" in str(key):
                found.append((where, value))
            found.extend(_implementation_choices(value, where + "."))
    return found


def _check_implementations(raw: dict[str, Any]) -> None:
    """config.json may name an attention kernel on the Hub, which transformers would fetch and run."""
    for where, value in _implementation_choices(raw):
        if value not in _SAFE_IMPLEMENTATIONS:
            reason = "remote_code" if isinstance(value, str) and "/" in value else "bad_config"
            raise ModelRejected(reason, f"config sets {where}={value!r}; only eager or sdpa are allowed")


def _check_causal(raw: dict[str, Any]) -> None:
    """A config may ask transformers for bidirectional attention: the model would see the token it predicts
    (subnet.eval.causality probes for every other way)."""
    if "is_causal" in raw and raw["is_causal"] is not True:
        raise ModelRejected("bad_config", f"config sets is_causal={raw['is_causal']!r}; a causal LM must be causal")
    for key, value in raw.items():
        if "bidirectional" in str(key) and value:
            raise ModelRejected("bad_config", f"config sets {key}={value!r}; a causal LM must not attend ahead")


def _check_files(model_dir: Path) -> None:
    if not model_dir.is_dir():  # our cache lost it (or a wrong path): not the miner's fault
        raise FileNotFoundError(errno.ENOENT, "model directory is missing", str(model_dir))
    check_tree(model_dir)
    names = [p.relative_to(model_dir).as_posix() for p in model_files(model_dir)]
    bad = sorted(n for n in names if PurePosixPath(n).suffix.lower() in FORBIDDEN_SUFFIXES)
    if bad:
        raise ModelRejected("forbidden_files", f"pickle or code files present: {', '.join(bad[:5])}")


def _model_class(raw: dict[str, Any], competition) -> type:
    archs = raw.get("architectures")
    if not isinstance(archs, list) or len(archs) != 1 or not isinstance(archs[0], str):
        raise ModelRejected("architecture", f"config.json must name exactly one architecture, got {archs!r}")
    arch = archs[0]
    if arch not in competition.architectures:
        raise ModelRejected(
            "architecture", f"{arch} is not allowed in {competition.id}; allowed: {', '.join(competition.architectures)}"
        )
    import transformers

    try:
        cls = getattr(transformers, arch)
    except (AttributeError, ImportError):
        cls = None
    if not isinstance(cls, type) or not issubclass(cls, transformers.PreTrainedModel):
        raise ModelRejected("architecture", f"{arch} is not a model class of transformers {transformers.__version__}")
    return cls


def _load_config(model_dir: Path, cls: type):
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True, trust_remote_code=False)
    except Exception as e:  # transformers raises many types for bad configs
        raise ModelRejected("bad_config", f"config.json cannot be read by transformers: {e}") from None
    expected = getattr(cls, "config_class", None)
    if expected is not None and not isinstance(config, expected):
        raise ModelRejected("bad_config", f"config is a {type(config).__name__}, {cls.__name__} needs {expected.__name__}")
    return config


def _int_attr(config, name: str) -> int:
    return bounded_int(getattr(config, name, None), what=f"config {name}", reason="bad_config", low=1, high=_MAX_DIM)


def rough_param_estimate(hidden: int, layers: int, vocab: int, intermediate: int | None) -> int:
    """A transformer's parameter count to within a small factor, from four numbers (no allocation)."""
    ffn = intermediate if intermediate else 4 * hidden
    return vocab * hidden + layers * (4 * hidden * hidden + 3 * hidden * ffn)


# ----------------------------------------------------------------------------- tokenizer


@functools.lru_cache(maxsize=8)
def tokenizer_vocab_size(tokenizer_ref: str) -> int | None:
    """len(tokenizer) of a competition's tokenizer; None when the tokenizer module is unavailable."""
    try:
        from subnet.data.tokenizer import load_tokenizer
    except ImportError:
        log.warning("subnet.data.tokenizer is unavailable; vocab size check skipped")
        return None
    return len(load_tokenizer(tokenizer_ref))


# ----------------------------------------------------------------------------- safetensors


def tensor_json_cap(n_tensors: int) -> int:
    """The largest shard index or safetensors header a model with `n_tensors` tensors may have."""
    return min(LIBRARY_HEADER_CAP, JSON_METADATA_BYTES + JSON_BYTES_PER_TENSOR * n_tensors)


def weight_files(model_dir: Path, n_tensors: int) -> tuple[list[Path], dict[str, str] | None]:
    """The safetensors files that hold the weights, and the index's weight map when there is one.

    The index is read within the bounds a model of `n_tensors` tensors needs (`tensor_json_cap`).
    """
    index = model_dir / INDEX_NAME
    if index.is_file():
        weight_map = read_index(index, max_bytes=tensor_json_cap(n_tensors), is_safe_path=is_safe_path,
                                max_tensors=n_tensors)
        shards = sorted(set(weight_map.values()))
        for shard in shards:
            if not (model_dir / shard).is_file():
                raise ModelRejected("no_safetensors", f"shard {shard} listed in {INDEX_NAME} is missing")
        return [model_dir / s for s in shards], weight_map
    if (model_dir / WEIGHTS_NAME).is_file():
        return [model_dir / WEIGHTS_NAME], None
    raise ModelRejected("no_safetensors", f"neither {WEIGHTS_NAME} nor {INDEX_NAME} is present")


def _read_headers(model_dir: Path, files: list[Path], weight_map: dict[str, str] | None,
                  n_tensors: int) -> dict[str, TensorSpec]:
    """Every tensor of every weight file, each header strictly checked and bounded by the model's size."""
    found: dict[str, TensorSpec] = {}
    for path in files:
        shard = path.relative_to(model_dir).as_posix()
        for name, spec in read_header(path, max_header_bytes=tensor_json_cap(n_tensors), max_tensors=n_tensors).items():
            if name in found:
                raise ModelRejected("weights_mismatch", f"tensor {name[:80]} appears in more than one shard")
            if weight_map is not None and weight_map.get(name) != shard:
                raise ModelRejected("weights_mismatch", f"tensor {name[:80]} is in {shard}, {INDEX_NAME} says "
                                                        f"{str(weight_map.get(name))[:80]}")
            found[name] = spec
    if weight_map is not None and set(weight_map) != set(found):
        absent = sorted(set(weight_map) - set(found))[:5]
        raise ModelRejected("weights_mismatch", f"{INDEX_NAME} lists tensors no shard holds: {', '.join(absent)}")
    return found


def _check_weights(meta_model, model_dir: Path) -> list[Path]:
    """The weight files, after checking that their tensors are exactly the model's, with its shapes."""
    expected = {k: tuple(v.shape) for k, v in meta_model.state_dict().items()}
    files, weight_map = weight_files(model_dir, len(expected))
    found = {name: (spec.dtype, spec.shape) for name, spec in
             _read_headers(model_dir, files, weight_map, len(expected)).items()}
    unexpected = sorted(set(found) - set(expected))
    if unexpected:
        raise ModelRejected("weights_mismatch", f"unexpected tensors: {', '.join(unexpected[:5])}")
    wrong = [f"{k} {found[k][1]} != {expected[k]}" for k in sorted(found) if found[k][1] != expected[k]]
    if wrong:
        raise ModelRejected("weights_mismatch", f"wrong shapes: {'; '.join(wrong[:3])}")
    # A missing tensor is fine only when it is tied to one that is present (e.g. lm_head = embeddings).
    names_by_param: dict[int, set[str]] = {}
    for name, param in meta_model.named_parameters(remove_duplicate=False):
        names_by_param.setdefault(id(param), set()).add(name)
    present = set(found)
    missing = [
        k for k in sorted(set(expected) - present)
        if not any(names & present for names in names_by_param.values() if k in names)
    ]
    if missing:
        raise ModelRejected("weights_mismatch", f"missing tensors: {', '.join(missing[:5])}")
    return files


# ----------------------------------------------------------------------------- public API


def _checked(model_dir: Path, competition, tokenizer_vocab: int | None):
    """Every check; returns (model class, config, meta model, weight files, info)."""
    import torch

    model_dir = Path(model_dir)
    _check_files(model_dir)
    raw = _read_config(model_dir)
    if "auto_map" in raw:
        raise ModelRejected("remote_code", "config.json has auto_map: custom code is never run")
    _check_implementations(raw)
    _check_causal(raw)
    cls = _model_class(raw, competition)
    config = _load_config(model_dir, cls)
    hidden = _int_attr(config, "hidden_size")
    layers = _int_attr(config, "num_hidden_layers")
    vocab = _int_attr(config, "vocab_size")
    positions = _int_attr(config, "max_position_embeddings")
    intermediate = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None)
    if intermediate is not None:
        intermediate = bounded_int(intermediate, what="config intermediate_size", reason="bad_config",
                                   low=1, high=_MAX_DIM)
    estimate = rough_param_estimate(hidden, layers, vocab, intermediate)
    if layers > _MAX_LAYERS or estimate > _ESTIMATE_SLACK * competition.max_params:
        raise ModelRejected(
            "too_many_params", f"config describes about {estimate:,} parameters, the limit is {competition.max_params:,}"
        )
    if positions < competition.max_seq_len:
        raise ModelRejected("seq_len", f"model handles {positions} positions, {competition.id} needs {competition.max_seq_len}")
    if getattr(competition, "free_tokenizer", False):  # the model's own tokenizer.json, within bounds
        from subnet.hub.tokenizer_file import read_tokenizer_file, separator_id

        separator_id(getattr(config, "eos_token_id", None), vocab)
        read_tokenizer_file(model_dir, vocab)
    else:
        need = tokenizer_vocab if tokenizer_vocab is not None else tokenizer_vocab_size(competition.tokenizer)
        if need is not None and vocab < need:
            raise ModelRejected("vocab_mismatch", f"vocab_size {vocab} is smaller than the tokenizer's {need}")
    if not (model_dir / INDEX_NAME).is_file() and not (model_dir / WEIGHTS_NAME).is_file():
        raise ModelRejected("no_safetensors", f"neither {WEIGHTS_NAME} nor {INDEX_NAME} is present")
    try:
        with torch.device("meta"):
            meta_model = cls._from_config(config, attn_implementation="sdpa")
    except Exception as e:
        raise ModelRejected("bad_config", f"{cls.__name__} cannot be built from this config: {e}") from None
    n_params = sum(p.numel() for p in meta_model.parameters())
    if n_params > competition.max_params:
        raise ModelRejected("too_many_params", f"{n_params:,} parameters, the limit is {competition.max_params:,}")
    if n_params < competition.min_params:
        raise ModelRejected("too_few_params", f"{n_params:,} parameters, the minimum is {competition.min_params:,}")
    files = _check_weights(meta_model, model_dir)
    info = ModelInfo(
        architecture=cls.__name__, n_params=n_params, vocab_size=vocab, max_position_embeddings=positions,
        hidden_size=hidden, num_layers=layers,
        weight_files=tuple(p.relative_to(model_dir).as_posix() for p in files),
        weight_bytes=sum(p.stat().st_size for p in files),
    )
    return cls, config, meta_model, files, info


def check_model_dir(model_dir: Path | str, competition, *, tokenizer_vocab: int | None = None) -> ModelInfo:
    """Check a model directory against a competition without reading any weight. Raises ModelRejected."""
    return _checked(Path(model_dir), competition, tokenizer_vocab)[4]


def inspect_model(model_dir: Path | str, competition, *, tokenizer_vocab: int | None = None):
    """Every check of check_model_dir; returns (model class, config, meta model, weight files, ModelInfo)
    for a caller that loads the weights itself (the sliced evaluator, subnet/eval/sliced.py)."""
    return _checked(Path(model_dir), competition, tokenizer_vocab)


def default_dtype(device: str):
    import torch

    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


def load_model(model_dir: Path | str, competition, device: str = "cpu", dtype=None, *, tokenizer_vocab: int | None = None):
    """check_model_dir, then build the model on `device` in `dtype` and copy the weights in, tensor by tensor."""
    import torch
    from safetensors import safe_open
    from transformers.initialization import no_init_weights

    cls, config, meta_model, files, _ = _checked(Path(model_dir), competition, tokenizer_vocab)
    del meta_model
    dtype = dtype or default_dtype(device)
    try:
        with no_init_weights(), torch.device(device):
            model = cls._from_config(config, dtype=dtype, attn_implementation="sdpa")
    except Exception as e:
        raise ModelRejected("bad_config", f"{cls.__name__} cannot be built: {e}") from None
    model.tie_weights()  # no_init_weights also skips the tying that post_init would do
    targets = model.state_dict()  # tensors sharing storage with the parameters and persistent buffers
    loaded: set[str] = set()
    with torch.no_grad():
        for path in files:
            with safe_open(str(path), framework="pt", device=str(device)) as f:
                for name in f.keys():
                    if name not in targets:
                        raise ModelRejected("weights_mismatch", f"unexpected tensor {name}")
                    targets[name].copy_(f.get_tensor(name))  # one tensor at a time, cast on copy
                    loaded.add(name)
    # Tied parameters (lm_head = embeddings) are the same tensor object, so loading one loads both.
    params = {id(p) for n, p in model.named_parameters(remove_duplicate=False) if n in loaded}
    unloaded = [n for n, p in model.named_parameters(remove_duplicate=False) if id(p) not in params and n not in loaded]
    if unloaded:
        raise ModelRejected("weights_mismatch", f"weights never loaded: {', '.join(unloaded[:5])}")
    return model.eval()
