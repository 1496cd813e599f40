"""Every knob of a training run, in one visible place.

The loop in `subnet.miner.train` reads nothing else: no hidden defaults in helper functions, no
environment lookups beyond the torchrun variables. A checkpoint stores this dataclass, so a resumed
run can refuse a changed configuration instead of silently mixing two runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

# Fields a resumed run may change without breaking exact reproduction of the loss curve.
RESUMABLE_CHANGES = frozenset(
    {"out_dir", "resume", "log_every", "checkpoint_every", "keep_checkpoints", "compile", "device", "peak_flops",
     "progress", "activation_checkpointing"}
)


@dataclass
class TrainConfig:
    # --- what to train
    competition: str = "tiny"
    init: str = "scratch"  # "scratch" (reference config), a local model directory, or "chain"
    out_dir: str = "runs/tiny"
    seed: int = 1337
    # A directory (or Hub id) of the model's own tokenizer; only for a competition with free tokenizers.
    # "" = the competition's tokenizer.
    tokenizer: str = ""
    # --- data: a source as the validator builds it (subnet.data.sources.make_source)
    dataset: str = ""  # "" = the competition's own; "synthetic", "fineweb", "parquet:DIR", "stream:REPO[:CONFIG]|DIR"
    seq_len: int = 0  # tokens per training sequence; 0 = the competition's max_seq_len
    docs_per_chunk: int = 200  # documents fetched per data chunk (one fetch_round call)
    reference_documents: int = 0  # held-out set size excluded from training; 0 = competition's max_documents
    # --- batch: tokens per optimizer step = micro_batch_size * seq_len * grad_accum * world_size
    micro_batch_size: int = 8
    grad_accum: int = 1
    steps: int = 200
    # --- optimizer: AdamW (fused where available), optionally Muon for 2-D hidden weights
    optimizer: str = "adamw"  # "adamw" | "muon"
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine decays lr to lr * min_lr_ratio
    warmup_steps: int = 20
    weight_decay: float = 0.1  # never applied to norms, biases or embeddings
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    muon_lr: float = 3e-3  # Muon with adjust_lr_fn="match_rms_adamw" reuses AdamW-scale rates
    muon_momentum: float = 0.95
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    # --- execution
    device: str = "auto"  # "auto" = cuda when available, else cpu
    parallelism: str = "auto"  # "auto" (DDP while a replica fits, else FSDP2) | "ddp" | "fsdp" | "none"
    activation_checkpointing: bool = False  # recompute activations in backward: less memory, ~1/3 more compute
    data_shards: int = 0  # data streams per step; 0 = one per process. Fix it to make runs independent of #GPUs
    compile: bool = False  # torch.compile the model
    bf16: bool = True  # bf16 autocast on GPU (ignored on CPU, where training runs in float32)
    deterministic: bool = False  # torch.use_deterministic_algorithms; for exact-resume checks
    # --- bookkeeping
    log_every: int = 10
    checkpoint_every: int = 0  # 0 = only at the end
    keep_checkpoints: int = 3  # newest N step checkpoints kept; 0 keeps all
    resume: str = ""  # "" = fresh run; "latest" = newest checkpoint in out_dir; or a checkpoint directory
    peak_flops: float = 0.0  # accelerator peak FLOP/s for MFU; 0 = guess from the GPU name
    progress: str = "auto"  # "bar" (live bar) | "lines" (a log line every log_every steps) | "auto" (see train.py)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def fail(name: str, why: str) -> None:
            raise ValueError(f"TrainConfig.{name} {why}")

        positive = ("docs_per_chunk", "micro_batch_size", "grad_accum", "steps", "log_every")
        for name in positive:
            if getattr(self, name) <= 0:
                fail(name, f"must be positive, got {getattr(self, name)}")
        for name in ("seq_len", "reference_documents", "warmup_steps", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 0:
                fail(name, f"must not be negative, got {getattr(self, name)}")
        if self.optimizer not in ("adamw", "muon"):
            fail("optimizer", f"must be 'adamw' or 'muon', got {self.optimizer!r}")
        for name in ("lr", "muon_lr"):
            if not getattr(self, name) > 0:
                fail(name, f"must be positive, got {getattr(self, name)}")
        if not 0 <= self.min_lr_ratio <= 1:
            fail("min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            fail("weight_decay" if self.weight_decay < 0 else "grad_clip", "must not be negative")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            fail("beta1/beta2", f"must be in [0, 1), got {self.beta1}, {self.beta2}")
        if self.parallelism not in ("auto", "ddp", "fsdp", "none"):
            fail("parallelism", f"must be 'auto', 'ddp', 'fsdp' or 'none', got {self.parallelism!r}")
        if self.data_shards < 0:
            fail("data_shards", f"must not be negative, got {self.data_shards}")
        if self.progress not in ("auto", "bar", "lines"):
            fail("progress", f"must be 'auto', 'bar' or 'lines', got {self.progress!r}")
        if not self.init:
            fail("init", "must be 'scratch', 'chain' or a model directory")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {unknown}")
        return cls(**dict(data))

    def changes_breaking_resume(self, saved: Mapping[str, Any]) -> list[str]:
        """Fields that differ from a checkpoint's config and would change the loss curve."""
        now = self.to_dict()
        return sorted(k for k, v in saved.items() if k in now and k not in RESUMABLE_CHANGES and now[k] != v)
