"""Step 5 of a round: the round's documents, and the scorers that turn models into per-document losses."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from subnet.competitions import Competition
from subnet.data.types import RoundData, TokenizedDocuments
from subnet.eval.types import ScoreOutcome
from subnet.hub.errors import ModelRejected
from subnet.validator.context import RoundDeps, ScoreJobSpec, Scorer


class RoundDataError(RuntimeError):
    """The round could not get the documents its seed chose (or too few of them): it is not judged."""


def data_problem(round_data: RoundData, competition: Competition) -> str | None:
    """Why these documents must not be judged, or None. Scoring other pages than the seed chose, or a
    handful of documents, would let validators disagree or a lucky model win everything."""
    budget = competition.sampling
    if len(round_data.page_ids) < budget.pages:
        first = round_data.failed_pages[0] if round_data.failed_pages else "no page fetched"
        return (f"got {len(round_data.page_ids)} of the {budget.pages} pages the seed chose "
                f"({len(round_data.failed_pages)} failed; first: {first})")
    if len(round_data.documents) < budget.required_documents:
        dropped = ", ".join(f"{n} {why}" for why, n in round_data.dropped) or "none dropped"
        return (f"{len(round_data.documents)} documents, the competition needs at least "
                f"{budget.required_documents} ({dropped})")
    return None


def prepare_documents(deps: RoundDeps, seed: str, competition: Competition,
                      round_id: int | None = None) -> tuple[RoundData, TokenizedDocuments]:
    """The round's documents, tokenized; with `round_id`, their identity is recorded first, refused or not.

    Raises RoundDataError when the data is not what the seed chose: the round then fails cleanly
    and records why, rather than scoring something its peers did not.
    """
    from subnet.data.sampling import build_round, tokenize_documents
    from subnet.data.tokenizer import load_tokenizer

    round_data = build_round(deps.source_for(competition), seed, competition)
    problem = data_problem(round_data, competition)
    if round_id is not None:
        deps.state.record_round_data(round_id, competition.id, seed, round_data.page_ids, round_data.digest,
                                     len(round_data.documents), round_data.failed_pages,
                                     identity=round_data.identity(), error=problem)
    if problem is not None:
        raise RoundDataError(f"{competition.id}: {problem}")
    if competition.free_tokenizer:  # each model tokenizes the texts itself, in its scoring worker
        from subnet.data.texts import text_documents

        return round_data, text_documents(round_data.documents, competition.max_seq_len, round_data.digest)
    tokenizer = deps.tokenizers.get(competition.tokenizer)
    if tokenizer is None:
        tokenizer = deps.tokenizers[competition.tokenizer] = load_tokenizer(competition.tokenizer)
    docs = tokenize_documents(round_data.documents, tokenizer, competition.max_seq_len, round_data.digest)
    return round_data, docs


def document_sources(docs: TokenizedDocuments, competition: Competition):
    """Each document's source index for a multi-source competition; None (one source) otherwise."""
    if not competition.sources:
        return None
    from subnet.data.sources import source_index

    return [source_index(doc_id) for doc_id in docs.doc_ids]


def blame_lost_cache(jobs: Sequence[ScoreJobSpec], outcomes: dict[str, ScoreOutcome]) -> dict[str, ScoreOutcome]:
    """A model that failed while its cached files vanished or changed failed for our fault (`cache_lost`).

    Whatever the failure looked like (a loader's refusal, a crash, no finite loss), files that are no
    longer what was verified say nothing about the miner's model; the next round fetches it again.
    """
    from subnet.hub.cache import cached_copy_intact

    for job in jobs:
        outcome = outcomes.get(job.key)
        if outcome is None or not _failed(outcome) or cached_copy_intact(Path(job.model_dir)):
            continue
        cause = outcome.error or "no finite loss"
        outcomes[job.key] = ScoreOutcome(None, "cache_lost", f"the cached copy at {job.model_dir} vanished or changed "
                                         f"while it was scored ({cause}: {outcome.detail[:300]})", outcome.seconds)
    return outcomes


def _failed(outcome: ScoreOutcome) -> bool:
    if outcome.error or outcome.losses is None:
        return True
    return not np.isfinite(outcome.losses.per_token()).any()


def worker_scorer(device: str, timeout_s: float, max_memory_bytes: int | None = None) -> Scorer:
    """One spawned process per model: a crash, hang or OOM costs only that model.

    `device` is one device or several, comma-separated (`cuda:0,cuda:1`, as the CLI resolves them): one
    worker per device, each taking the next model as soon as it is free. The round hands over one model
    at a time (its outcome is recorded before the next starts), so successive calls rotate the devices:
    every GPU is used, though not yet in parallel. CPU workers are capped at `max_memory_bytes` of
    address space (None: sized to the competition, see `subnet.eval.worker.default_memory_cap`); GPU
    workers by the device's own memory.
    """
    devices = [d for d in device.split(",") if d]
    calls = itertools.count()

    def score(jobs: Sequence[ScoreJobSpec], competition: Competition, docs: TokenizedDocuments):
        from subnet.eval.worker import ScoreJob, score_models
        from subnet.progress import WorkProgress

        out = {}
        with WorkProgress(f"scoring {competition.id}", len(jobs), "models") as progress:
            # One device: one model at a time, for progress and an ETA per model. Several: one call.
            groups = [jobs[i:i + 1] for i in range(len(jobs))] if len(devices) == 1 else [list(jobs)]
            for group in groups:
                turn = next(calls) % len(devices)
                out.update(score_models([ScoreJob(j.key, j.model_dir) for j in group], competition, docs,
                                        devices=devices[turn:] + devices[:turn], timeout_s=timeout_s,
                                        max_memory_bytes=max_memory_bytes))
                progress.advance(len(group))
        return blame_lost_cache(jobs, out)

    return score


def inprocess_scorer(device: str) -> Scorer:
    """Scores in this process (devnet, tests): faster to start, no isolation from a hostile model."""

    def score(jobs: Sequence[ScoreJobSpec], competition: Competition, docs: TokenizedDocuments):
        from subnet.eval.free_tokens import score_documents
        from subnet.hub.loading import load_model
        from subnet.progress import WorkProgress

        out = {}
        for job in jobs:
            start = time.perf_counter()
            try:
                model = load_model(job.model_dir, competition, device=device.split(",")[0])
                with WorkProgress(f"scoring {job.key[:12]}", len(docs), "docs") as progress:
                    losses = score_documents(model, job.model_dir, docs, competition.max_seq_len,
                                             device=device.split(",")[0], on_documents=progress.advance)
                del model
            except ModelRejected as e:
                out[job.key] = ScoreOutcome(None, f"rejected:{e.reason}", e.detail, time.perf_counter() - start)
                continue
            except Exception as e:  # noqa: BLE001 - one model's failure must not stop the round
                out[job.key] = ScoreOutcome(None, "crashed", f"{type(e).__name__}: {e}", time.perf_counter() - start)
                continue
            seconds = time.perf_counter() - start
            out[job.key] = ScoreOutcome(losses, "", "", seconds, float(losses.n_tokens.sum()) / max(seconds, 1e-9))
        return blame_lost_cache(jobs, out)

    return score
