"""`subnet miner train | benchmark | compare | upload | register`: the miner's jobs.

Flags follow bittensor's style (--netuid, --network, --wallet.name, --wallet.hotkey,
--wallet.path) so miners' existing scripts carry over; `--network devnet:PATH` runs against the
embedded local chain and `--store local:DIR` against a directory store. Shared flags also read
SUBNET_* environment variables (and btcli's BT_NETWORK, BT_WALLET, BT_WALLET_HOTKEY, BT_WALLET_PATH);
uploads to the Hugging Face Hub use the token in HF_TOKEN (or `hf auth login`). Every command leaves
a domain failure (an unreachable chain, a refused upload) as one line `error: ...` and exit 1
(`miner_options.domain_errors`); results go to stdout, progress and tables under --json to stderr.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Optional

import typer

from subnet.commands import miner_register
from subnet.commands.boundary import CONTEXT_SETTINGS, CommandError, fail, run_command
from subnet.commands.miner_options import (  # noqa: F401 - parse_overrides re-exported
    AS_JSON,
    CACHE_DIR,
    COMPETITION,
    COMPETITIONS_FILE,
    DATASET,
    DEVICE,
    DOCUMENTS,
    HF_ENDPOINT,
    INCUMBENT_EPS,
    NETUID,
    NETWORK,
    STORE,
    WALLET_HOTKEY,
    WALLET_NAME,
    WALLET_PATH,
    chain_for,
    competition_for,
    domain_errors,
    netuid_for,
    output_console,
    parse_overrides,
    store_for,
    wallet_for,
)

app = typer.Typer(help="Train, benchmark and publish models.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, context_settings=CONTEXT_SETTINGS)

# ----------------------------------------------------------------------------- train


@app.command()
@domain_errors
def train(
    competition: Optional[str] = COMPETITION,
    init: str = typer.Option("scratch", "--init", help="scratch | chain | a model directory."),
    out_dir: str = typer.Option("runs/model", "--out-dir", envvar="SUBNET_OUT_DIR",
                                help="Checkpoints, metrics and the final model/ (must be empty unless --resume)."),
    steps: int = typer.Option(200, "--steps", help="Optimizer steps in total (a resumed run counts earlier ones)."),
    micro_batch_size: int = typer.Option(8, "--batch-size", help="Sequences per micro-batch per process."),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Micro-batches per optimizer step."),
    seq_len: int = typer.Option(0, "--seq-len", help="0 = the competition's max_seq_len."),
    lr: float = typer.Option(3e-3, "--lr", help="Peak learning rate (cosine decay after warm-up)."),
    warmup_steps: int = typer.Option(20, "--warmup-steps", help="Steps of linear learning-rate warm-up."),
    optimizer: str = typer.Option("adamw", "--optimizer", help="adamw | muon (Muon for hidden matrices)."),
    dataset: str = typer.Option("", "--dataset", help="'' = the competition's; synthetic | fineweb | parquet:DIR"),
    seed: int = typer.Option(1337, "--seed", help="Seed of the initial weights and the data order."),
    tokenizer: str = typer.Option("", "--tokenizer", help="The model's own tokenizer (a directory with "
                                  "tokenizer.json); only for a competition with free tokenizers."),
    device: str = DEVICE,
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    checkpoint_every: int = typer.Option(0, "--checkpoint-every", help="Steps between checkpoints (0: end only)."),
    resume: str = typer.Option("", "--resume", help="'latest' or a checkpoint directory."),
    log_every: int = typer.Option(10, "--log-every", help="Steps between progress lines and metrics.jsonl records."),
    progress: str = typer.Option("auto", "--progress",
                                 help="bar | lines | auto (a bar when stderr is a terminal, else log lines)."),
    overrides: list[str] = typer.Option([], "--set", help="Any TrainConfig field: --set weight_decay=0.05"),
    as_json: bool = typer.Option(False, "--json", help="Accepted for symmetry: stdout is always the summary as "
                                 "one JSON object, and progress goes to stderr."),
    network: str = NETWORK,
    netuid: int = NETUID,
    store: str = STORE,
    hf_endpoint: Optional[str] = HF_ENDPOINT,
) -> None:
    """Train a model for a competition (from scratch, a directory, or the best model on chain).

    Progress goes to stderr; stdout is the run's summary, one JSON object."""
    from subnet.miner.config import TrainConfig

    competition = competition_for(competition, None, network, on_chain=init == "chain").id
    try:
        config = TrainConfig(
            competition=competition, init=init, out_dir=out_dir, steps=steps, micro_batch_size=micro_batch_size,
            grad_accum=grad_accum, seq_len=seq_len, lr=lr, warmup_steps=warmup_steps, optimizer=optimizer,
            dataset=dataset, seed=seed, tokenizer=tokenizer, device=device, compile=compile_model,
            checkpoint_every=checkpoint_every,
            resume=resume, log_every=log_every, progress=progress,
        )
        config = dataclasses.replace(config, **parse_overrides(overrides))
    except ValueError as e:
        fail(str(e))
    chain = model_store = None
    if init == "chain":
        chain, model_store = chain_for(network, netuid), store_for(store, hf_endpoint)
    _run_training(config, chain, model_store)


def _run_training(config, chain, model_store) -> None:
    """Train, then print the summary as one JSON object on stdout (rank 0 only)."""
    from subnet.miner.run_dir import TrainingInterrupted
    from subnet.miner.train import train as run_training

    try:
        result = run_training(config, chain=chain, store=model_store)
    except TrainingInterrupted as e:
        fail(str(e), code=130)
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if result.model_dir is not None:
        summary = {"model_dir": str(result.model_dir), "steps": result.steps, "final_loss": result.losses[-1],
                   "tokens_per_s": result.tokens_per_s, "mfu": result.mfu, "n_params": result.n_params,
                   "run": str(Path(config.out_dir) / "run.json")}
        typer.echo(json.dumps(summary))


# ----------------------------------------------------------------------------- benchmark


@app.command()
@domain_errors
def benchmark(
    candidate: Path = typer.Argument(..., exists=True, file_okay=False, help="The candidate model directory."),
    incumbent: str = typer.Option("chain", "--incumbent", help="A model directory, or 'chain' for the best on chain."),
    incumbent_age_blocks: Optional[float] = typer.Option(
        None, "--incumbent-age-blocks", help="Age of the incumbent (default: from its commitment, or 0)."),
    incumbent_eps: Optional[float] = INCUMBENT_EPS,
    documents: int = DOCUMENTS,
    dataset: str = DATASET,
    competition: Optional[str] = COMPETITION,
    competitions_file: Optional[Path] = COMPETITIONS_FILE,
    device: str = DEVICE,
    as_json: bool = AS_JSON,
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write histograms and error-bar curves to this PNG."),
    cache_dir: Path = CACHE_DIR,
    network: str = NETWORK,
    netuid: int = NETUID,
    store: str = STORE,
    hf_endpoint: Optional[str] = HF_ENDPOINT,
) -> None:
    """Would CANDIDATE beat the incumbent? Both scored as validators score, on held-out documents."""
    from subnet.hub.errors import ModelRejected
    from subnet.miner.benchmark import benchmark as run_benchmark
    from subnet.miner.benchmark_report import plot_report, report_table

    comp = competition_for(competition, competitions_file, network, on_chain=incumbent == "chain")
    console = output_console(stderr=as_json)
    incumbent_block, age = None, incumbent_age_blocks
    if incumbent == "chain":
        chain = chain_for(network, netuid)
        found = _chain_incumbent(chain, store_for(store, hf_endpoint), comp, cache_dir.expanduser())
        incumbent_dir, incumbent_block = found.path, found.block
        if age is None:
            age = max(0, chain.current_block() - found.block)
        console.print(f"incumbent: {found.describe()}", markup=False)
    else:
        incumbent_dir = Path(incumbent)
        if not incumbent_dir.is_dir():
            fail(f"--incumbent {incumbent!r} is neither 'chain' nor a directory")
    try:
        report = run_benchmark(candidate, incumbent_dir, comp, incumbent_age_blocks=age or 0.0,
                               incumbent_block=incumbent_block, n_documents=documents, dataset=dataset, device=device,
                               earned_eps=incumbent_eps)
    except ModelRejected as e:
        fail(f"a model would be rejected by validators: {e}")
    console.print(report_table(report))
    console.print(f"verdict: [bold]{report.verdict.text}[/bold]")
    if plot is not None:
        console.print(f"plot: {plot_report(report, plot)}")
    if as_json:
        sys.stdout.write(report.to_json() + "\n")


def _chain_incumbent(chain, model_store, comp, cache_dir: Path):
    """The competition's weight holder on chain, downloaded and verified; a one-line error when none."""
    from subnet.miner.chain_models import best_model_on_chain

    found = best_model_on_chain(chain, model_store, comp, cache_dir)
    if found is None:
        fail(f"no valid {comp.id} model on chain to compare with; pass --incumbent DIR")
    return found


# ----------------------------------------------------------------------------- compare


@app.command()
@domain_errors
def compare(
    targets: list[Path] = typer.Argument(..., help="Runs (output directories), checkpoints or model directories."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Which target the others are compared with "
                                           "(default: the first)."),
    documents: int = DOCUMENTS,
    dataset: str = DATASET,
    competition: Optional[str] = COMPETITION,
    competitions_file: Optional[Path] = COMPETITIONS_FILE,
    device: str = DEVICE,
    as_json: bool = AS_JSON,
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write loss curves and paired differences to this PNG."),
    network: str = NETWORK,
) -> None:
    """Which experiments helped? Paired intervals with Holm-corrected p-values, and tests across seeds."""
    from subnet.hub.errors import ModelRejected
    from subnet.miner.run_compare import (
        plot_compare,
        report_json,
        report_tables,
        run_compare,
    )

    if len(targets) < 2:
        fail("compare needs at least two targets")
    comp = competition_for(competition, competitions_file, network)
    console = output_console(stderr=as_json)
    try:
        report, resolved = run_compare(targets, comp, baseline=baseline, n_documents=documents, dataset=dataset,
                                       device=device, progress=lambda name: console.print(f"scored {name}"))
    except (ValueError, ModelRejected) as e:
        fail(str(e))
    for table in report_tables(report):
        console.print(table)
    if plot is not None:
        console.print(f"plot: {plot_compare(report, resolved, plot)}")
    if as_json:
        sys.stdout.write(report_json(report) + "\n")


# ----------------------------------------------------------------------------- upload


@app.command()
@domain_errors
def upload(
    model_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="The model directory to publish."),
    namespace: str = typer.Option(..., "--namespace", help="Repo owner (Hugging Face user or org)."),
    name: str = typer.Option(..., "--name", help="Repo name."),
    competition: Optional[str] = COMPETITION,
    competitions_file: Optional[Path] = COMPETITIONS_FILE,
    force: bool = typer.Option(False, "--force", help="Publish even if the benchmark says it cannot win."),
    incumbent: str = typer.Option("chain", "--incumbent", help="'chain', 'none' (skip the benchmark) or a directory."),
    incumbent_age_blocks: Optional[float] = typer.Option(None, "--incumbent-age-blocks",
                                                         help="Age of the incumbent (default: from its commitment)."),
    incumbent_eps: Optional[float] = INCUMBENT_EPS,
    documents: int = typer.Option(0, "--documents", help="Benchmark documents (0: the competition's round size)."),
    device: str = DEVICE,
    cache_dir: Path = CACHE_DIR,
    network: str = NETWORK,
    netuid: int = NETUID,
    wallet_name: str = WALLET_NAME,
    wallet_hotkey: str = WALLET_HOTKEY,
    wallet_path: str = WALLET_PATH,
    store: str = STORE,
    hf_endpoint: Optional[str] = HF_ENDPOINT,
    yes: bool = typer.Option(False, "--yes", "-y", help="Replace this hotkey's existing commitment without asking."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Run the checks and the benchmark, say what would happen, change nothing."),
) -> None:
    """Check, upload privately, commit on chain, verify, make public. Safe to re-run after a failure.

    Replacing this hotkey's commitment with a different model restarts the model's age: asked on a
    terminal before anything is uploaded; elsewhere refused unless --yes."""
    from subnet.chain.base import ChainError
    from subnet.miner.upload import UploadError, UploadOptions, upload_model

    comp = competition_for(competition, competitions_file, network, on_chain=True)
    netuid = netuid_for(network, netuid)
    model_store = store_for(store, hf_endpoint)
    chain, hotkey = _upload_preflight(wallet_for(wallet_name, wallet_hotkey, wallet_path), network, netuid,
                                      model_store, namespace)
    options = UploadOptions(
        force=force, incumbent_dir=None if incumbent in ("chain", "none") else Path(incumbent),
        incumbent_age_blocks=incumbent_age_blocks, find_incumbent=incumbent == "chain", earned_eps=incumbent_eps,
        cache_dir=cache_dir.expanduser(), n_documents=documents, device=device,
        confirm_replace=None if yes else ask_to_replace, dry_run=dry_run)
    try:
        ref = upload_model(model_dir, model_store, chain, hotkey, namespace, name, comp, options, echo=typer.echo)
    except UploadError as e:
        fail(str(e))
    except ChainError as e:  # e.g. the commit rate limit: re-running upload finishes the job
        fail(f"the chain refused ({e.code}): {e}; re-run upload to finish")
    if ref is not None:
        typer.echo(ref.encode())


def _upload_preflight(wallet, network: str, netuid: int, model_store, namespace: str):
    """Before anything is uploaded: the key signs, the hotkey is registered, the Hub takes writes.
    Returns the chain (signing with the wallet) and the hotkey's address."""
    from subnet.chain.factory import DEVNET_PREFIX
    from subnet.preflight import check_hub_write, hotkey_address, read_metagraph, registered_neuron

    devnet = network.startswith(DEVNET_PREFIX)
    join = (f"`subnet miner register --network {network} --wallet.path {wallet.path} --wallet.name {wallet.name} "
            f"--wallet.hotkey {wallet.hotkey_str}")
    if devnet and not wallet.hotkey_file.exists_on_device():
        raise CommandError(f"hotkey file {wallet.hotkey_file.path} not found; on a devnet create and register it "
                           f"with {join} --create`")
    hotkey = hotkey_address(wallet)
    chain = chain_for(network, netuid, wallet)
    metagraph = read_metagraph(chain, network)
    if devnet and metagraph.uid_of(hotkey) is None:
        raise CommandError(f"hotkey {hotkey} is not registered on subnet {netuid} ({network}); register it with "
                           f"{join}`")
    neuron = registered_neuron(metagraph, hotkey, network)
    account = check_hub_write(model_store, namespace)
    typer.echo(f"hotkey {hotkey} is uid {neuron.uid} on subnet {chain.netuid}"
               + (f"; Hub account {account}" if account else ""))
    return chain, hotkey


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def ask_to_replace(question: str) -> bool:
    """A yes/no on the terminal. Without one nobody can answer, so the upload stops (before any
    upload) with a message that names --yes instead of quietly taking a no."""
    from subnet.miner.upload import UploadError

    if not _stdin_is_terminal():
        raise UploadError(f"no terminal to ask on, so nothing was uploaded: {question}. Pass --yes to replace it "
                          "(or --dry-run to see what would happen)")
    try:
        return typer.confirm(question, default=False, err=True)
    except typer.Abort:
        return False


miner_register.add_command(app)


def main() -> None:
    raise SystemExit(run_command(app, prog_name="miner"))


if __name__ == "__main__":
    main()
