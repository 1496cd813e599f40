"""Step 5 of a round: the round's documents, and the scorers that turn models into per-document losses."""

from __future__ import annotations

import time
from typing import Sequence

from subnet.competitions import Competition
from subnet.data.types import RoundData, TokenizedDocuments
from subnet.eval.types import ScoreOutcome
from subnet.hub.errors import ModelRejected
from subnet.validator.context import RoundDeps, ScoreJobSpec, Scorer


def seed_block(block: int, window: int) -> int:
    """Every validator derives the same seed within a window: the hash of its first block."""
    return (block // window) * window


def prepare_documents(deps: RoundDeps, seed: str, competition: Competition) -> tuple[RoundData, TokenizedDocuments]:
    from subnet.data.sampling import build_round, tokenize_documents
    from subnet.data.tokenizer import load_tokenizer

    round_data = build_round(deps.source_for(competition), seed, competition)
    if not round_data.documents:
        raise RuntimeError(
            f"data source returned no documents for {competition.id} "
            f"({len(round_data.failed_pages)} page(s) failed: {list(round_data.failed_pages)[:3]})"
        )
    tokenizer = deps.tokenizers.get(competition.tokenizer)
    if tokenizer is None:
        tokenizer = deps.tokenizers[competition.tokenizer] = load_tokenizer(competition.tokenizer)
    docs = tokenize_documents(round_data.documents, tokenizer, competition.max_seq_len, round_data.digest)
    return round_data, docs


def worker_scorer(device: str, timeout_s: float) -> Scorer:
    """One spawned process per model: a crash, hang or OOM costs only that model."""

    def score(jobs: Sequence[ScoreJobSpec], competition: Competition, docs: TokenizedDocuments):
        from subnet.eval.worker import ScoreJob, score_models

        return score_models([ScoreJob(j.key, j.model_dir) for j in jobs], competition, docs, device=device,
                            timeout_s=timeout_s)

    return score


def inprocess_scorer(device: str) -> Scorer:
    """Scores in this process (devnet, tests): faster to start, no isolation from a hostile model."""

    def score(jobs: Sequence[ScoreJobSpec], competition: Competition, docs: TokenizedDocuments):
        from subnet.eval.engine import compute_losses
        from subnet.hub.loading import load_model

        out = {}
        for job in jobs:
            start = time.perf_counter()
            try:
                model = load_model(job.model_dir, competition, device=device)
                losses = compute_losses(model, docs, device=device)
                del model
            except ModelRejected as e:
                out[job.key] = ScoreOutcome(None, f"rejected:{e.reason}", e.detail, time.perf_counter() - start)
                continue
            except Exception as e:  # noqa: BLE001 - one model's failure must not stop the round
                out[job.key] = ScoreOutcome(None, "crashed", f"{type(e).__name__}: {e}", time.perf_counter() - start)
                continue
            seconds = time.perf_counter() - start
            out[job.key] = ScoreOutcome(losses, "", "", seconds, float(losses.n_tokens.sum()) / max(seconds, 1e-9))
        return out

    return score
