"""A causal LM run slice by slice: only some decoder layers on the device at a time.

For models whose weights do not fit next to their activations on the device. The model is built
on the `meta` device (shapes only), exactly as the loader would build it. A pass then:

1. materialises the embeddings and the first slice of decoder layers, reading each tensor lazily
   from the safetensors files (`safe_open`, one tensor at a time, straight to the device);
2. runs every batch of the round through the base model's own `forward` (transformers' code builds
   the causal / packed masks and rotary embeddings as for the full model), with the layers outside
   the slice replaced by pass-throughs and the final norm by an identity, and parks each batch's
   hidden states on the host;
3. frees the slice, materialises the next one, and feeds the parked states back in as
   `inputs_embeds`; after the last slice the final norm and the output head are materialised and
   `finish(i, hidden)` receives each batch's last hidden states on the device.

Feeding hidden states back through `inputs_embeds` is exact only for architectures whose base
forward passes `inputs_embeds` on untouched (Gemma, for one, scales them): `SLICEABLE` lists them.
On the device at any time: one slice (or embeddings + slice, or norm + head) plus one batch's
activations. The host holds the hidden states of all batches of the round.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from subnet.eval.engine import BodyInputs
from subnet.eval.head import OutputHead, UnsupportedModel

# Base models whose forward hands `inputs_embeds` to the first layer unchanged (checked per release).
SLICEABLE = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")


class _PassThrough(torch.nn.Module):
    """A decoder layer outside the current slice: returns its input."""

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return hidden_states


@dataclass
class SliceStats:
    """What a sliced pass did, for logs and scripts/bench_eval.py."""

    slices: int = 0
    layers_per_slice: int = 0
    passes: int = 0
    largest_slice_bytes: int = 0
    host_state_bytes: int = 0  # hidden states of all batches parked on the host, at most
    device_peak_bytes: int | None = None  # CUDA allocator peak during the passes (None on CPU)
    slice_seconds: list[float] = field(default_factory=list)


class SlicedModel:
    """A meta-device model whose weights are read from `files` one slice of layers at a time."""

    def __init__(self, cls: type, config, files: Sequence[Path], device: torch.device, dtype: torch.dtype,
                 slice_bytes: int):
        if cls.__name__ not in SLICEABLE:
            raise UnsupportedModel(f"{cls.__name__} cannot be scored sliced; sliced evaluation supports "
                                   f"{', '.join(SLICEABLE)}")
        self.device, self.dtype = torch.device(device), dtype
        with torch.device("meta"):
            self.model = cls._from_config(config, dtype=dtype, attn_implementation="sdpa")
        self.model.eval()
        self.base = self.model.base_model
        self.config = self.model.config
        self.head = OutputHead.of(self.model)
        self.layers = list(self.base.layers)
        self.sources = _tensor_sources(self.model, files)
        per_layer = max((_bytes(layer) for layer in self.layers), default=1)
        self.layers_per_slice = max(1, int(slice_bytes) // max(per_layer, 1))
        self.stats = SliceStats(layers_per_slice=self.layers_per_slice)
        self._prefix = {id(m): name + "." if name else "" for name, m in self.model.named_modules()}

    def slices(self) -> list[list[int]]:
        n, k = len(self.layers), self.layers_per_slice
        return [list(range(i, min(n, i + k))) for i in range(0, n, k)] or [[]]

    def run(self, batches: Sequence[BodyInputs], finish: Callable[[int, torch.Tensor], None]) -> None:
        """One pass of every batch through every slice; `finish(i, hidden)` gets batch i's normed states."""
        plan = self.slices()
        self.stats.slices, self.stats.passes = len(plan), self.stats.passes + 1
        parked: list[torch.Tensor | None] = [None] * len(batches)
        self._rotary()
        for s, layer_ids in enumerate(plan):
            started = time.monotonic()
            mods = [self.layers[i] for i in layer_ids] + ([self.base.embed_tokens] if s == 0 else [])
            with self._materialised(mods), self._only(layer_ids):
                for b, inputs in enumerate(batches):
                    parked[b] = self._forward(inputs, parked[b]).to("cpu")
            self.stats.slice_seconds.append(time.monotonic() - started)
        self.stats.host_state_bytes = max(self.stats.host_state_bytes, sum(_nbytes(t) for t in parked))
        with self._materialised([self.base.norm, self.head.projection]):
            for b, hidden in enumerate(parked):
                parked[b] = None  # host memory goes back batch by batch
                finish(b, self.base.norm(hidden.to(self.device)))
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
            self.stats.device_peak_bytes = max(self.stats.device_peak_bytes or 0, peak)

    def _forward(self, inputs: BodyInputs, parked: torch.Tensor | None) -> torch.Tensor:
        kwargs = dict(
            attention_mask=inputs.mask.to(self.device) if inputs.mask is not None else None,
            position_ids=inputs.position_ids.to(self.device) if inputs.position_ids is not None else None,
            use_cache=False,
        )
        if parked is None:
            out = self.base(input_ids=inputs.ids.to(self.device), **kwargs)
        else:
            out = self.base(inputs_embeds=parked.to(self.device), **kwargs)
        return out.last_hidden_state

    def _rotary(self) -> None:
        """Rotary embeddings rebuilt on the device as the loader builds them (float32 inv_freq)."""
        rotary = getattr(self.base, "rotary_emb", None)
        if rotary is not None and any(b.is_meta for b in rotary.buffers()):
            with torch.device(self.device):
                self.base.rotary_emb = type(rotary)(config=self.config)

    @contextmanager
    def _only(self, layer_ids: Sequence[int]) -> Iterator[None]:
        """The base model with only these layers real, the rest pass-throughs, and no final norm."""
        keep = set(layer_ids)
        real = self.base.layers, self.base.norm
        self.base.layers = torch.nn.ModuleList(
            [layer if i in keep else _PassThrough() for i, layer in enumerate(self.layers)])
        self.base.norm = torch.nn.Identity()
        try:
            yield
        finally:
            self.base.layers, self.base.norm = real

    @contextmanager
    def _materialised(self, modules: Sequence[torch.nn.Module]) -> Iterator[None]:
        """These modules' tensors read from the weight files onto the device, and freed afterwards."""
        size = 0
        try:
            for module in modules:
                module.to_empty(device=self.device)
                self._load(module)
                size += _bytes(module)
            self.stats.largest_slice_bytes = max(self.stats.largest_slice_bytes, size)
            yield
        finally:
            for module in modules:
                module.to_empty(device="meta")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def _load(self, module: torch.nn.Module) -> None:
        from safetensors import safe_open

        prefix = self._prefix[id(module)]
        wanted: dict[Path, list[tuple[str, torch.Tensor]]] = {}
        for name, tensor in module.state_dict().items():
            path, source = self.sources[prefix + name]
            wanted.setdefault(path, []).append((source, tensor))
        with torch.no_grad():
            for path, pairs in wanted.items():
                with safe_open(str(path), framework="pt", device=str(self.device)) as f:
                    for source, tensor in pairs:
                        tensor.copy_(f.get_tensor(source))  # one tensor at a time, cast on copy


def _tensor_sources(model: torch.nn.Module, files: Sequence[Path]) -> dict[str, tuple[Path, str]]:
    """For every state-dict name: the file and stored name that hold it (tied names share one)."""
    from safetensors import safe_open

    stored: dict[str, Path] = {}
    for path in files:
        with safe_open(str(path), framework="pt") as f:
            stored.update({name: Path(path) for name in f.keys()})
    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    aliases = {name: names for names in groups.values() for name in names}
    sources = {}
    for name in model.state_dict(keep_vars=True):
        held = next((n for n in [name, *aliases.get(name, [])] if n in stored), None)
        if held is None:
            raise UnsupportedModel(f"no weight file holds {name}")
        sources[name] = (stored[held], held)
    return sources


def _bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def _nbytes(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.numel() * t.element_size()
