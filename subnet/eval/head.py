"""A causal LM split into body (tokens -> last hidden states) and output head (hidden -> logits).

Splitting lets the engine project only the positions it needs to the vocabulary, a chunk at a
time or through a fused kernel, instead of materialising the full logits of a batch.

Output heads supported: a plain linear projection (`get_output_embeddings()`), optionally
followed by the final-logit transforms transformers applies for Gemma 2/3 (`final_logit_softcapping`),
Cohere (`logit_scale`) and Granite (`logits_scaling`). `verify_head` checks on a short prefix
of one document that the head reproduces the model's own logits and refuses a model whose head
does something else (`UnsupportedModel`), rather than scoring it wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from subnet.data.types import TokenizedDocuments

HEAD_CHECK_TOKENS = 16
# The check compares full-vocabulary logits several times over: fewer positions at a huge vocabulary
# (a 20M vocabulary made 16 positions a 1.3 GB tensor, the comparison's temporaries 8 GB in all).
HEAD_CHECK_LOGITS_BYTES = 64 * 1024**2


class UnsupportedModel(ValueError):
    """The model's structure does not let the engine compute its losses exactly."""


@dataclass
class OutputHead:
    body: torch.nn.Module
    projection: torch.nn.Module
    vocab_size: int
    logit_multiplier: float = 1.0  # Cohere's logit_scale, or 1 / Granite's logits_scaling
    softcap: float | None = None  # Gemma 2/3: softcap * tanh(logits / softcap)

    @classmethod
    def of(cls, model: torch.nn.Module) -> "OutputHead":
        body = getattr(model, "base_model", None)
        get_head = getattr(model, "get_output_embeddings", None)
        projection = get_head() if callable(get_head) else None
        if body is None or body is model or projection is None:
            raise UnsupportedModel(
                f"{type(model).__name__} has no separate base model and output embedding; "
                "expected a transformers *ForCausalLM / *LMHeadModel"
            )
        vocab = getattr(projection, "out_features", None) or int(projection.weight.shape[0])
        config = getattr(model, "config", None)
        scale = getattr(config, "logit_scale", None)  # Cohere: multiplies
        divide = getattr(config, "logits_scaling", None)  # Granite: divides
        softcap = getattr(config, "final_logit_softcapping", None)
        multiplier = 1.0
        if isinstance(scale, (int, float)) and scale != 1:
            multiplier *= scale
        if isinstance(divide, (int, float)) and divide != 1:
            multiplier /= divide
        softcap = float(softcap) if isinstance(softcap, (int, float)) and softcap else None
        return cls(body, projection, int(vocab), multiplier, softcap)

    @property
    def is_plain_linear(self) -> bool:
        """No bias and no transform: what a fused linear cross-entropy kernel computes as is."""
        return (
            isinstance(self.projection, torch.nn.Linear)
            and self.projection.bias is None
            and self.logit_multiplier == 1.0
        )

    def hidden_states(
        self, ids: torch.Tensor, mask: torch.Tensor | None, position_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        kwargs = {"position_ids": position_ids} if position_ids is not None else {}
        out = self.body(input_ids=ids, attention_mask=mask, use_cache=False, **kwargs)
        return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self.projection(hidden).float()
        if self.logit_multiplier != 1.0:
            x = x * self.logit_multiplier
        if self.softcap:
            x = torch.tanh(x / self.softcap) * self.softcap
        return x


def verify_head(model: torch.nn.Module, head: OutputHead, docs: TokenizedDocuments, device: torch.device) -> None:
    """Refuse a model whose own logits differ from body + head (an unsupported output transform)."""
    sample = next((t for t in docs.tokens if len(t) >= 2), None)
    if sample is None:
        return
    positions = max(1, min(HEAD_CHECK_TOKENS, HEAD_CHECK_LOGITS_BYTES // (4 * max(head.vocab_size, 1))))
    ids = torch.as_tensor(np.asarray(sample[:positions], dtype=np.int64), device=device)[None, :]
    expected = model(input_ids=ids, use_cache=False).logits.float()[0]
    actual = head.logits(head.hidden_states(ids, None))[0]
    low_precision = expected.dtype != torch.float32 or head.projection.weight.dtype != torch.float32
    tol = 3e-2 if low_precision else 1e-4
    scale = max(1.0, float(torch.nan_to_num(expected, nan=0.0, posinf=0.0, neginf=0.0).abs().max()))
    if not torch.allclose(actual, expected, rtol=tol, atol=tol * scale, equal_nan=True):
        raise UnsupportedModel(
            f"{type(model).__name__}: logits from its base model and output embedding differ from "
            "its own forward; its output head applies a transform this engine does not support"
        )
