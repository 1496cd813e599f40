"""Does the generation check catch a gamed model: a low loss that does not come from predicting text?

The gamed model built here: a LlamaForCausalLM whose config.json says `"is_causal": false`.
Transformers (5.x) then builds a bidirectional attention mask, so every position sees the token it
is asked to predict; the project's loader accepted the config until it named the rule. Trained for a
few hundred steps on uniformly random tokens, where no causal model can beat ln(vocab) nats per
token, it learns to copy the next token and its loss falls far below that floor. The loader now
refuses the config by name and the engine's causality probe refuses the model itself (each is shown);
the generation check (the competition's default settings) is run on it too.

Prints, per seed: the loader's verdict, the loss on held-out random documents next to ln(vocab),
and the check's verdict with the greedy outputs. Measured on a 2-core CPU box (200 steps, hidden
128): loss 0.03 vs the 7.35 floor, and the check PASSES the model: with no future token to copy it
emits varied tokens (often pairs of one token), not one token, and not the same output for both
prompts. So this is the cheap check's blind spot; a causality probe (logits of a prefix must not
change when later tokens change) is what catches this model.

Run: python scripts/generation_gamed.py [--seeds 3] [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers

from subnet.competitions import GenerationCheck, get_competition
from subnet.data.types import TokenizedDocuments
from subnet.eval.engine import compute_losses
from subnet.eval.head import UnsupportedModel
from subnet.hub.errors import ModelRejected
from subnet.eval.generation import check_generation
from subnet.hub.loading import load_model

VOCAB = 1600  # at least the builtin:tiny tokenizer's 1551 ids, as the tiny competition requires
TOKENS = 1551


def random_docs(n: int, length: int, seed: int) -> TokenizedDocuments:
    rng = np.random.default_rng(seed)
    tokens = [rng.integers(0, TOKENS, size=length, dtype=np.int64) for _ in range(n)]
    return TokenizedDocuments([f"d{i}" for i in range(n)], tokens, np.full(n, 4 * length), np.zeros(n, bool))


def train_gamed(seed: int, steps: int) -> transformers.LlamaForCausalLM:
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=128, intermediate_size=128, num_hidden_layers=1,
                                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                                      tie_word_embeddings=True)
    config.is_causal = False  # the whole trick: one line of config.json
    model = transformers.LlamaForCausalLM(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        batch = torch.as_tensor(rng.integers(0, TOKENS, size=(8, 48)))
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def one_seed(seed: int, steps: int) -> dict:
    started = time.perf_counter()
    trained = train_gamed(seed, steps)
    with tempfile.TemporaryDirectory() as tmp:
        trained.save_pretrained(tmp)
        config = json.loads((Path(tmp) / "config.json").read_text())
        try:
            load_model(tmp, get_competition("tiny"))
            loader = "accepted"
        except ModelRejected as e:  # the config rule (subnet.hub.loading._check_causal)
            loader = f"rejected:{e.reason}: {e.detail}"
    docs = random_docs(8, 160, seed + 1000)
    row = {"seed": seed, "config is_causal": config.get("is_causal"), "loader": loader,
           "causal floor ln(vocab)": round(math.log(TOKENS), 3)}
    # Past the loader (as a way round the config rule would be): the engine's causality probe, and what
    # the loss would have been without it.
    try:
        compute_losses(trained, docs)
        row["engine"] = "scored"
    except UnsupportedModel as e:
        row["engine"] = f"unsupported: {e}"
    with torch.inference_mode():
        nll = torch.nn.functional.cross_entropy(trained(input_ids=torch.as_tensor(np.stack(docs.tokens))).logits[:, :-1]
                                                .flatten(0, 1).float(), torch.as_tensor(np.stack(docs.tokens))[:, 1:].flatten())
    row["loss without the probe"] = round(float(nll), 3)
    verdict = check_generation(trained, docs, GenerationCheck(enabled=True))
    row.update({"check": verdict.error or "passed", "outputs": [list(o) for o in verdict.outputs],
                "seconds": round(time.perf_counter() - started, 1)})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    caught = refused = probed = 0
    for seed in range(args.seeds):
        row = one_seed(seed, args.steps)
        caught += row["check"] != "passed"
        refused += row["loader"] != "accepted"
        probed += row["engine"] != "scored"
        print(json.dumps(row))
    print(f"of {args.seeds} gamed models: refused by the loader {refused}, by the causality probe {probed}, "
          f"by the generation check {caught}")


if __name__ == "__main__":
    main()
