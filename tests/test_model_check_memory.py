"""`subnet model check` of a model exactly at a competition's parameter limit with a huge vocabulary
(issue 29): a GPT-2 with hidden size 1 and a 20M-token vocabulary is 20,000,000 parameters, tiny's
limit. Its check peaked at 8 GB and ended in an allocator error reported as `check_error` (a
1024-token chunk of its logits is 80 GB). Now the logits a chunk or the head check materialises
are bounded in bytes, and the check passes within a stated bound, measured as the child's peak RSS."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from subnet.competitions import get_competition
from subnet.eval.token_loss import CPU_LOGITS_CHUNK_BYTES, default_chunk_tokens

PEAK_RSS_BOUND_BYTES = 3 * 1024**3  # measured 1.5 GB (weights 80 MB, two 480 MB chunk tensors, torch)

MEASURE = """
import json, resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux: KiB
print(json.dumps({"rc": proc.returncode, "peak": peak, "stdout": proc.stdout, "stderr": proc.stderr[-3000:]}))
"""


def test_the_logits_chunk_is_bounded_in_bytes_at_any_vocabulary():
    assert default_chunk_tokens("cpu", 50_000) == 1024  # ordinary vocabularies: unchanged
    for vocab in (1_000_000, 20_000_000, 10**9):
        assert 1 <= default_chunk_tokens("cpu", vocab) and default_chunk_tokens("cpu", vocab) * 4 * vocab <= max(
            CPU_LOGITS_CHUNK_BYTES, 4 * vocab)


@pytest.fixture(scope="module")
def widest_vocab_model(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    limit = get_competition("tiny").max_params

    def build(vocab: int) -> GPT2LMHeadModel:
        return GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=1, n_head=1, n_layer=1, n_positions=256,
                                          n_inner=4))

    vocab = limit - (build(1000).num_parameters() - 1000)
    model = build(vocab)
    assert model.num_parameters() == limit
    directory = tmp_path_factory.mktemp("models") / "wide-vocab"
    model.save_pretrained(directory, safe_serialization=True)
    return directory


@pytest.mark.slow
def test_a_model_at_the_parameter_limit_with_a_20m_vocabulary_is_checked_within_the_bound(widest_vocab_model):
    command = [sys.executable, "-m", "subnet", "model", "check", str(widest_vocab_model), "--competition", "tiny",
               "--documents", "2", "--json"]
    out = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, timeout=900)
    result = json.loads(out.stdout)
    verdict = json.loads(result["stdout"].strip().splitlines()[-1])
    assert result["rc"] == 0 and verdict["accepted"] is True, (verdict, result["stderr"])
    assert verdict["n_params"] == 20_000_000 and verdict["documents"] == 2 and verdict["failed_documents"] == 0
    assert result["peak"] < PEAK_RSS_BOUND_BYTES, f"peak RSS {result['peak'] / 1024**3:.2f} GB"
