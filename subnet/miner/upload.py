"""Publishing a model: check, upload privately, commit on chain, verify, make public.

Order matters (see DESIGN.md): the repo stays private until the commitment's block exists, so
nobody can copy the weights and commit them first. Every step is safe to repeat, so re-running
after a failure midway finishes the job instead of committing twice:
- upload: stores are content-addressed or no-op on identical files, so the same commit comes back;
- commit: skipped when the chain already holds exactly this commitment for this hotkey (a second
  commit would move the model's birth block later and cost it advantage);
- make public: idempotent.
The hash that goes on chain is computed from what the store serves (downloaded back), not from
the local directory, so a store that rewrites or drops a file cannot make the commitment lie.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from subnet.chain.base import Chain, ChainError
from subnet.competitions import Competition
from subnet.hub.errors import ModelRejected
from subnet.hub.hashing import directory_hash, secure_hash
from subnet.hub.model_ref import ModelRef
from subnet.hub.store import ModelStore

log = logging.getLogger(__name__)

REFUSING_VERDICTS = ("never", "not_significant")
READBACK_ATTEMPTS = 4  # reading our commitment back: a lagging node may need a block
READBACK_WAIT_S = 6.0


class UploadError(RuntimeError):
    """Publishing could not be completed; the message says which step failed and what to do."""


@dataclass(frozen=True)
class UploadOptions:
    """How to publish, beyond what and where.

    The benchmark runs when an incumbent is given (`incumbent_dir`, aged `incumbent_age_blocks`, born
    at `incumbent_block`) or, with `find_incumbent`, when the chain has one (another hotkey's weight
    holder); it uses the validator's advantage (`earned_eps`: what the incumbent earned, default the
    cap in mode "earned", as `subnet miner benchmark`). A model that cannot win is refused unless
    `force`. Replacing a different commitment restarts the hotkey's model age, so
    `confirm_replace(question)` is asked before anything is uploaded (None: replace without asking,
    as scripts and devnet do; it may raise `UploadError` to refuse with its own message). `dry_run`
    stops after the checks and the benchmark, saying what would happen."""

    force: bool = False
    incumbent_dir: Path | None = None
    incumbent_age_blocks: float | None = None
    incumbent_block: int | None = None
    find_incumbent: bool = False
    earned_eps: float | None = None
    cache_dir: Path | None = None
    n_documents: int = 0
    device: str = "auto"
    confirm_replace: Callable[[str], bool] | None = None
    dry_run: bool = False


def upload_model(model_dir: Path | str, store: ModelStore, chain: Chain, wallet_hotkey_ss58: str, namespace: str,
                 name: str, competition: Competition, options: UploadOptions = UploadOptions(), *,
                 echo: Callable[[str], None] = print) -> ModelRef | None:
    """Publish `model_dir` for `wallet_hotkey_ss58` (whose wallet `chain` signs with); returns the
    ModelRef, or None after a dry run."""
    model_dir, hotkey = Path(model_dir), wallet_hotkey_ss58
    check_like_validator(model_dir, competition)
    echo(f"{model_dir} passes the validator's checks for {competition.id}")
    if not options.force:
        refuse_if_cannot_win(model_dir, chain, store, hotkey, competition, options, echo)
    existing = own_commitment(chain, hotkey)
    replacing = existing is not None and not is_same_model(existing.data, namespace, name, model_dir, hotkey)
    if options.dry_run:
        what = (f", replacing its commitment {existing.data!r} of block {existing.block} (the model's age "
                "restarts)" if replacing else "")
        echo(f"dry run: would upload {model_dir} privately to {namespace}/{name}, commit it for {hotkey}{what}, "
             "then make it public")
        return None
    confirm = options.confirm_replace
    if replacing and confirm is not None:  # before anything is uploaded
        confirm_or_refuse(confirm, existing, f"{namespace}/{name}", "nothing was uploaded")
        confirm = None

    commit = store.upload(model_dir, namespace, name, private=True)
    echo(f"uploaded privately to {namespace}/{name} at revision {commit}")
    dir_hash = served_directory_hash(store, namespace, name, commit, model_dir, competition)
    ref = ModelRef(namespace, name, commit, secure_hash(dir_hash, hotkey), competition.id)
    commit_once(chain, hotkey, ref, confirm, echo)

    store.make_public(namespace, name)
    echo(f"{namespace}/{name} is public")
    verify_as_validator(store, ref, hotkey, competition)
    echo(f"verified: validators can fetch {ref.short()} and its hash matches the commitment")
    return ref


def is_same_model(committed: str, namespace: str, name: str, model_dir: Path, hotkey: str) -> bool:
    """Whether the hotkey's commitment already names this repo with this directory's content (a re-run
    after a failure midway), so that finishing the job asks nothing."""
    try:
        ref = ModelRef.parse(committed)
    except ValueError:
        return False
    return ref.repo_id == f"{namespace}/{name}" and ref.secure_hash == secure_hash(directory_hash(model_dir), hotkey)


def confirm_or_refuse(confirm: Callable[[str], bool], existing, new: str, kept: str) -> None:
    """Ask before replacing `existing` (the model's age restarts); a no keeps it."""
    question = (f"replace the commitment {existing.data!r} of block {existing.block} with {new}? "
                "The new model's age starts at 0")
    if not confirm(question):
        raise UploadError(f"kept the existing commitment; {kept}")


def commit_once(chain: Chain, hotkey: str, ref: ModelRef, confirm: Callable[[str], bool] | None,
                echo: Callable[[str], None]) -> None:
    """Commit `ref` unless the chain already holds it, then read it back; a commitment that does not
    land keeps the repo private (the caller makes it public only after this returns). `confirm` is
    asked only when a replacement was not foreseen before the upload (None: not asked)."""
    data = ref.encode()
    existing = own_commitment(chain, hotkey)
    if existing is not None and existing.data == data:
        echo(f"chain already holds this commitment (block {existing.block}); not committing again")
    else:
        if existing is not None and confirm is not None:
            confirm_or_refuse(confirm, existing, data, f"{ref.repo_id}@{ref.commit} stays private")
        try:
            block = chain.commit(data)
            echo(f"committed {data} in block {block}")
        except ChainError as e:
            if e.code != "unknown_outcome":
                raise
            echo(f"the commit's outcome is unknown ({e}); reading the chain back to see whether it landed")
    landed = read_back(chain, hotkey, data)
    if landed is None or landed.data != data:
        raise UploadError(
            f"the chain's commitment for {hotkey} is {landed.data if landed else None!r}, "
            f"expected {data!r}; the repo stays private. Re-run upload to retry."
        )


def check_like_validator(model_dir: Path, competition: Competition) -> None:
    """The validator's checks: file rules, config/params/shapes, then an actual load."""
    from subnet.hub.download import check_upload_dir
    from subnet.hub.loading import check_model_dir, load_model

    try:
        check_upload_dir(model_dir)
        check_model_dir(model_dir, competition)
        load_model(model_dir, competition, device="cpu")
    except ModelRejected as e:
        raise UploadError(f"validators would reject {model_dir}: {e}") from None


def refuse_if_cannot_win(model_dir: Path, chain: Chain, store: ModelStore, hotkey: str, competition: Competition,
                         options: UploadOptions, echo: Callable[[str], None]) -> None:
    """The benchmark, exactly as `subnet miner benchmark` runs it; refuses a model that cannot win."""
    from subnet.miner.benchmark import benchmark

    incumbent_dir, incumbent_block, age_blocks = options.incumbent_dir, options.incumbent_block, options.incumbent_age_blocks
    if incumbent_dir is None and options.find_incumbent:
        from subnet.miner.chain_models import best_model_on_chain

        cache = options.cache_dir or Path(tempfile.gettempdir()) / "subnet-miner-cache"
        found = best_model_on_chain(chain, store, competition, Path(cache), exclude_hotkeys={hotkey})
        if found is not None:
            incumbent_dir, incumbent_block = found.path, found.block
            age_blocks = age_blocks if age_blocks is not None else max(0, chain.current_block() - found.block)
            echo(f"incumbent on chain: {found.describe()}")
    if incumbent_dir is None:
        return
    report = benchmark(model_dir, incumbent_dir, competition, incumbent_age_blocks=age_blocks or 0.0,
                       incumbent_block=incumbent_block, n_documents=options.n_documents, device=options.device,
                       earned_eps=options.earned_eps)
    echo(f"benchmark: candidate {report.candidate.mean:.5f}, incumbent {report.incumbent.mean:.5f}, "
         f"paired diff {report.paired.mean:+.5f} [{report.paired.low:+.5f}, {report.paired.high:+.5f}], "
         f"incumbent advantage {report.advantage_now:.4%}: {report.verdict.text}")
    if report.verdict.code in REFUSING_VERDICTS:
        raise UploadError(f"refusing to publish: the benchmark says the model {report.verdict.text} "
                          f"against {incumbent_dir}; pass --force to publish anyway")


def served_directory_hash(store: ModelStore, namespace: str, name: str, commit: str, model_dir: Path,
                          competition: Competition) -> str:
    """directory_hash of the revision as the store serves it.

    A store that serves nothing of a private repo, not even to its owner (LocalStore), is hashed
    from the local files instead: `check_upload_dir` already guaranteed those are exactly the
    files validators download, and `verify_as_validator` re-checks the served copy once public.
    """
    with tempfile.TemporaryDirectory(prefix="subnet-upload-") as tmp:
        try:
            served = store.download(namespace, name, commit, Path(tmp) / "model", max_bytes=competition.max_bytes)
        except ModelRejected as e:
            if e.reason != "not_public":
                raise UploadError(f"the store cannot serve {namespace}/{name}@{commit}: {e}") from None
            return directory_hash(model_dir)
        served_hash = directory_hash(served)
    local_hash = directory_hash(model_dir)
    if served_hash != local_hash:
        log.warning("the store serves different content than %s; committing the served hash", model_dir)
    return served_hash


def own_commitment(chain: Chain, hotkey: str):
    return next((c for c in chain.commitments() if c.hotkey == hotkey), None)


def read_back(chain: Chain, hotkey: str, data: str):
    """The hotkey's commitment once it shows `data`, or the last one seen: a node may lag a block behind."""
    attempts, wait_s = READBACK_ATTEMPTS, READBACK_WAIT_S
    landed = None
    for attempt in range(attempts):
        landed = own_commitment(chain, hotkey)
        if landed is not None and landed.data == data:
            return landed
        if attempt + 1 < attempts:
            time.sleep(wait_s)
    return landed


def verify_as_validator(store: ModelStore, ref: ModelRef, hotkey: str, competition: Competition) -> None:
    """Fetch the public revision through the validator's path and check the hash against the commitment."""
    from subnet.hub.download import fetch_verified

    with tempfile.TemporaryDirectory(prefix="subnet-verify-") as tmp:
        try:
            fetch_verified(store, ref, hotkey, competition, Path(tmp))
        except ModelRejected as e:
            raise UploadError(f"committed {ref.encode()} but validators would reject it: {e}") from None
