"""Generation check: fail a model that reaches a low loss but cannot generate text.

The loss only asks a model to predict each token with the whole document before it; it never
asks the model to continue its own output. Subnet 9 guards against models that score but cannot
generate with this cheap check; here it is opt-in per competition (`generation_check`).

Its blind spot, measured by scripts/generation_gamed.py: a Llama config with `"is_causal": false`
lets attention see the token being predicted (a loss near zero), yet with no future to copy such a
model still emits varied tokens and passes. Only a causality probe catches that model.

The check, run in the scoring worker after loading and before scoring, continues a few prompts
greedily and fails the model when every output repeats one token more than `max_repeats` times,
or when two outputs agree at more than `max_shared` positions (the output ignores the prompt).

Every validator reaches the same verdict: the prompts are a pure function of the round's
documents (the first `prompts` documents, in the round's order, longer than `prompt_tokens`,
each cut to `prompt_tokens`), decoding is greedy with no sampling (argmax, the lowest id on
ties), and each prompt runs alone, so batch shapes never depend on anything else. Validators
with other hardware or precision round logits differently and may pick another token at a
near-tie (a random tiny Llama's outputs agree at 7 and 2 of 20 positions in float32 vs bfloat16),
so only a model near a threshold can get different verdicts; a degenerate one fails by a wide
margin everywhere. The cost is bounded: `prompts * new_tokens` forward passes of at most
`prompt_tokens + new_tokens` tokens (about 4,400 tokens by default, against millions scored).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from subnet.competitions import GenerationCheck
from subnet.data.types import TokenizedDocuments
from subnet.eval.head import OutputHead, verify_head

ERROR_PREFIX = "generation:"
REPEATS = "repeats"  # every output repeats one token more than max_repeats times
IGNORES_PROMPT = "ignores_prompt"  # two outputs agree at more than max_shared positions


@dataclass(frozen=True)
class GenerationVerdict:
    prompts: tuple[int, ...]  # the documents the prompts were cut from
    outputs: tuple[tuple[int, ...], ...]  # the generated token ids, one tuple per prompt
    failure: str = ""  # '' when the model passed; else REPEATS or IGNORES_PROMPT
    detail: str = ""

    @property
    def error(self) -> str:
        """The worker's error code ('' when passed), e.g. 'generation:repeats'."""
        return f"{ERROR_PREFIX}{self.failure}" if self.failure else ""


def choose_prompts(docs: TokenizedDocuments, check: GenerationCheck) -> list[tuple[int, np.ndarray]]:
    """(document index, prompt) pairs: the first documents longer than prompt_tokens, cut to it.

    A round with too few such documents tops up with its longest others (ties: round order), each
    without its last token (EOS for an uncut document), so a prompt never ends a document.
    """
    n, length = check.prompts, check.prompt_tokens
    long_enough = [i for i, t in enumerate(docs.tokens) if len(t) > length][:n]
    others = sorted((i for i, t in enumerate(docs.tokens) if 2 <= len(t) <= length and i not in long_enough),
                    key=lambda i: (-len(docs.tokens[i]), i))
    chosen = long_enough + others[: n - len(long_enough)]
    return [(i, np.asarray(docs.tokens[i][: min(length, len(docs.tokens[i]) - 1)], dtype=np.int64)) for i in chosen]


def greedy_continuation(head: OutputHead, prompt: np.ndarray, new_tokens: int, device: torch.device) -> list[int]:
    """`new_tokens` greedy tokens after `prompt`: full forward passes (no cache, nothing the model's own
    generation config or cache code can change), the next token from the last position's logits only."""
    ids = torch.as_tensor(prompt, dtype=torch.long, device=device)[None, :]
    out: list[int] = []
    for _ in range(new_tokens):
        hidden = head.hidden_states(ids, None)[:, -1:]
        logits = head.logits(hidden)[0, -1]
        # NaN counts as the largest value, so a NaN model yields a constant token, deterministically.
        token = int(torch.argmax(torch.nan_to_num(logits, nan=float("inf"))))
        out.append(token)
        ids = torch.cat([ids, torch.tensor([[token]], dtype=torch.long, device=device)], dim=1)
    return out


def judge_outputs(outputs: list[list[int]], check: GenerationCheck) -> tuple[str, str]:
    """(failure, detail) for the generated outputs; ('', '') when they look like generated text."""
    reasons, failure = [], ""
    top = [Counter(o).most_common(1)[0] if o else (None, 0) for o in outputs]
    if outputs and all(count > check.max_repeats for _, count in top):
        failure = REPEATS
        counts = ", ".join(f"token {tok} x{count}" for tok, count in top)
        reasons.append(f"every output repeats one token more than {check.max_repeats} times ({counts} "
                       f"of {check.new_tokens})")
    pairs = [(a, b, sum(x == y for x, y in zip(outputs[a], outputs[b])))
             for a in range(len(outputs)) for b in range(a + 1, len(outputs))]
    a, b, shared = max(pairs, key=lambda p: p[2], default=(0, 0, 0))  # ties: the first pair
    if pairs and shared > check.max_shared:
        failure = failure or IGNORES_PROMPT
        reasons.append(f"outputs {a} and {b} agree at {shared} of {check.new_tokens} positions "
                       f"(more than {check.max_shared}): the output ignores the prompt")
    return failure, "; ".join(reasons)


def check_generation(model: torch.nn.Module, docs: TokenizedDocuments, check: GenerationCheck,
                     device: str | torch.device = "cpu") -> GenerationVerdict:
    """Greedy outputs for the round's prompts and the verdict on them (see the module docstring).

    A round with no document of two tokens or more has no prompt: the model passes. The model's own
    exceptions propagate (the worker records them as that model's failure).
    """
    device = torch.device(device)
    prompts = choose_prompts(docs, check)
    model.eval()
    head = OutputHead.of(model)
    with torch.inference_mode():
        verify_head(model, head, docs, device)  # the logits below are the model's own, or UnsupportedModel
        outputs = [greedy_continuation(head, prompt, check.new_tokens, device) for _, prompt in prompts]
    failure, why = judge_outputs(outputs, check)
    detail = ""
    if failure:
        shown = "; ".join(f"document {i} ({len(p)} tokens) -> {o}" for (i, p), o in zip(prompts, outputs))
        detail = f"{ERROR_PREFIX} {why}. Greedy outputs: {shown}"
    return GenerationVerdict(tuple(i for i, _ in prompts), tuple(tuple(o) for o in outputs), failure, detail)
