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


def upload_model(
    model_dir: Path | str,
    store: ModelStore,
    chain: Chain,
    wallet_hotkey_ss58: str,
    namespace: str,
    name: str,
    competition: Competition,
    force: bool = False,
    incumbent_dir: Path | str | None = None,
    *,
    incumbent_age_blocks: float | None = None,
    incumbent_block: int | None = None,
    find_incumbent: bool = False,
    cache_dir: Path | str | None = None,
    n_documents: int = 0,
    device: str = "auto",
    echo: Callable[[str], None] = print,
    confirm_replace: Callable[[str], bool] | None = None,
    dry_run: bool = False,
) -> ModelRef | None:
    """Publish `model_dir` for `wallet_hotkey_ss58` (whose wallet `chain` signs with); returns the ModelRef.

    The benchmark runs when an incumbent is given (`incumbent_dir`, aged `incumbent_age_blocks`)
    or, with `find_incumbent`, when the chain has one (another hotkey's best model). A model that
    cannot win is refused unless `force`.

    Replacing a different commitment restarts the hotkey's model age, so `confirm_replace(question)`
    is asked first (None: replace without asking, as scripts and devnet do). `dry_run` stops after the
    checks and the benchmark, saying what would happen, and returns None.
    """
    model_dir = Path(model_dir)
    check_like_validator(model_dir, competition)
    echo(f"{model_dir} passes the validator's checks for {competition.id}")

    if not force:
        refuse_if_cannot_win(model_dir, chain, store, wallet_hotkey_ss58, competition, incumbent_dir,
                             incumbent_age_blocks, incumbent_block, find_incumbent, cache_dir, n_documents, device, echo)

    if dry_run:
        existing = own_commitment(chain, wallet_hotkey_ss58)
        replacing = (f", replacing its commitment {existing.data!r} of block {existing.block} (the model's age "
                     "restarts)" if existing is not None else "")
        echo(f"dry run: would upload {model_dir} privately to {namespace}/{name}, commit it for "
             f"{wallet_hotkey_ss58}{replacing}, then make it public")
        return None

    commit = store.upload(model_dir, namespace, name, private=True)
    echo(f"uploaded privately to {namespace}/{name} at revision {commit}")
    dir_hash = served_directory_hash(store, namespace, name, commit, model_dir, competition)
    ref = ModelRef(namespace, name, commit, secure_hash(dir_hash, wallet_hotkey_ss58), competition.id)
    data = ref.encode()

    existing = own_commitment(chain, wallet_hotkey_ss58)
    if existing is not None and existing.data == data:
        echo(f"chain already holds this commitment (block {existing.block}); not committing again")
    else:
        if existing is not None and confirm_replace is not None and not confirm_replace(
                f"replace the commitment {existing.data!r} of block {existing.block} with {data!r}? "
                "The new model's age starts at 0"):
            raise UploadError(f"kept the existing commitment; {namespace}/{name}@{commit} stays private")
        try:
            block = chain.commit(data)
            echo(f"committed {data} in block {block}")
        except ChainError as e:
            if e.code != "unknown_outcome":
                raise
            echo(f"the commit's outcome is unknown ({e}); reading the chain back to see whether it landed")
    landed = read_back(chain, wallet_hotkey_ss58, data)
    if landed is None or landed.data != data:
        raise UploadError(
            f"the chain's commitment for {wallet_hotkey_ss58} is {landed.data if landed else None!r}, "
            f"expected {data!r}; the repo stays private. Re-run upload to retry."
        )

    store.make_public(namespace, name)
    echo(f"{namespace}/{name} is public")
    verify_as_validator(store, ref, wallet_hotkey_ss58, competition)
    echo(f"verified: validators can fetch {ref.short()} and its hash matches the commitment")
    return ref


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


def refuse_if_cannot_win(model_dir, chain, store, hotkey, competition, incumbent_dir, age_blocks, incumbent_block,
                         find_incumbent, cache_dir, n_documents, device, echo) -> None:
    from subnet.miner.benchmark import benchmark

    if incumbent_dir is None and find_incumbent:
        from subnet.miner.chain_models import best_model_on_chain

        cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "subnet-miner-cache"
        found = best_model_on_chain(chain, store, competition, cache, exclude_hotkeys={hotkey})
        if found is not None:
            incumbent_dir, incumbent_block = found.path, found.block
            age_blocks = age_blocks if age_blocks is not None else max(0, chain.current_block() - found.block)
            echo(f"incumbent on chain: {found.ref.short()} (uid {found.uid}, block {found.block})")
    if incumbent_dir is None:
        return
    report = benchmark(model_dir, incumbent_dir, competition, incumbent_age_blocks=age_blocks or 0.0,
                       incumbent_block=incumbent_block, n_documents=n_documents, device=device)
    echo(f"benchmark: candidate {report.candidate.mean:.5f}, incumbent {report.incumbent.mean:.5f}, "
         f"paired diff {report.paired.mean:+.5f} [{report.paired.low:+.5f}, {report.paired.high:+.5f}]: "
         f"{report.verdict.text}")
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
