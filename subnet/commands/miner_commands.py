"""`subnet miner train | benchmark | compare | upload`: the miner's jobs.

Flags follow bittensor's style (--netuid, --network, --wallet.name, --wallet.hotkey,
--wallet.path) so miners' existing scripts carry over; `--network devnet:PATH` runs against the
embedded local chain and `--store local:DIR` against a directory store. Shared flags also read
SUBNET_* environment variables (and btcli's BT_NETWORK, BT_WALLET, BT_WALLET_HOTKEY, BT_WALLET_PATH);
uploads to the Hugging Face Hub use the token in HF_TOKEN (or `hf auth login`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from subnet.commands.boundary import CONTEXT_SETTINGS, CommandError, fail, run_command

app = typer.Typer(help="Train, benchmark and publish models.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, context_settings=CONTEXT_SETTINGS)

# ----------------------------------------------------------------------------- shared options

NETWORK = typer.Option("finney", "--network", "--subtensor.network", "--subtensor.chain_endpoint",
                       envvar=["SUBNET_NETWORK", "BT_NETWORK"],
                       help="finney | test | local | ws(s)://URL | devnet:PATH (a devnet's chain.sqlite)")
NETUID = typer.Option(None, "--netuid", envvar="SUBNET_NETUID", help="Subnet uid; required except on a devnet.")
WALLET_NAME = typer.Option("default", "--wallet.name", "--wallet-name", envvar=["SUBNET_WALLET_NAME", "BT_WALLET"],
                           help="Bittensor wallet (coldkey) name.")
WALLET_HOTKEY = typer.Option("default", "--wallet.hotkey", "--wallet-hotkey",
                             envvar=["SUBNET_WALLET_HOTKEY", "BT_WALLET_HOTKEY"], help="Hotkey name in the wallet.")
WALLET_PATH = typer.Option("~/.bittensor/wallets", "--wallet.path", "--wallet-path",
                           envvar=["SUBNET_WALLET_PATH", "BT_WALLET_PATH"], help="Wallets directory.")
COMPETITION = typer.Option(None, "--competition", "-c", envvar="SUBNET_COMPETITION",
                           help="Competition id. Default: the network's (b3 on finney; tiny on a devnet).")
COMPETITIONS_FILE = typer.Option(None, "--competitions-file", envvar="SUBNET_COMPETITIONS_FILE",
                                 help="TOML/JSON file of competitions.")
STORE = typer.Option("hf", "--store", envvar="SUBNET_STORE", help="hf (Hugging Face Hub) or local:DIR.")
HF_ENDPOINT = typer.Option(None, "--hf-endpoint", envvar="HF_ENDPOINT",
                           help="Hugging Face endpoint (default: the public Hub).")
DOCUMENTS = typer.Option(0, "--documents", envvar="SUBNET_DOCUMENTS",
                         help="Held-out reference documents to score on (0: the competition's round size).")
DATASET = typer.Option("", "--dataset", envvar="SUBNET_DATASET", help="'' = the competition's dataset.")
AS_JSON = typer.Option(False, "--json", help="End with one JSON object on the last line.")
DEVICE = typer.Option("auto", "--device", envvar="SUBNET_DEVICE", help="auto | cpu | cuda | cuda:N")
CACHE_DIR = typer.Option(Path("~/.cache/subnet/miner"), "--cache-dir", envvar="SUBNET_CACHE_DIR",
                         help="Where models downloaded from the chain's miners go.")


def _competition(competition_id: Optional[str], competitions_file: Optional[Path], network: str,
                 on_chain: bool = False):
    """The competition by id, or the network's default one. `on_chain`: it must exist on the network
    (a devnet-only toy cannot be committed on a real chain); local work may use any."""
    from subnet.competitions import (
        CompetitionError,
        default_competition,
        get_competition,
        get_competition_on,
        load_competitions,
    )

    try:
        table = load_competitions(competitions_file) if competitions_file else None
        competition_id = competition_id or default_competition(network, table)
        if on_chain:
            return get_competition_on(network, competition_id, table)
        return get_competition(competition_id, table)
    except CompetitionError as e:
        raise typer.BadParameter(str(e), param_hint="--competition") from None


def _wallet(name: str, hotkey: str, path: str):
    import bittensor as bt

    return bt.Wallet(name=name, hotkey=hotkey, path=str(Path(path).expanduser()))


def _netuid(network: str, netuid: Optional[int]) -> int:
    """Usage checks of --network and --netuid (required off a devnet, whose subnet is 1)."""
    from subnet.chain.factory import DEVNET_PREFIX, network_problem

    problem = network_problem(network)
    if problem:
        raise typer.BadParameter(problem, param_hint="--network")
    if netuid is None:
        if not network.startswith(DEVNET_PREFIX):
            raise typer.BadParameter(f"required on network {network!r} (the subnet to mine)", param_hint="--netuid")
        return 1
    return netuid


def _chain(network: str, netuid: Optional[int], wallet=None):
    from subnet.chain.factory import make_chain

    return make_chain(network, _netuid(network, netuid), wallet=wallet)


def _store(spec: str, hf_endpoint: Optional[str]):
    from subnet.hub.factory import make_store

    try:
        return make_store(spec, hf_endpoint)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


_fail = fail


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`--set field=value` pairs, converted to the TrainConfig field's type."""
    from subnet.miner.config import TrainConfig

    types = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in types:
            raise typer.BadParameter(f"--set {pair!r}: expected FIELD=VALUE with FIELD one of {sorted(types)}")
        kind = str(types[key])
        try:
            if kind == "bool":
                if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(raw)
                value: Any = raw.lower() in ("1", "true", "yes")
            elif kind == "int":
                value = int(raw)
            elif kind == "float":
                value = float(raw)
            else:
                value = raw
        except ValueError:
            raise typer.BadParameter(f"--set {pair!r}: {key} must be a {kind}") from None
        result[key] = value
    return result


# ----------------------------------------------------------------------------- train


@app.command()
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
    network: str = NETWORK,
    netuid: int = NETUID,
    store: str = STORE,
    hf_endpoint: Optional[str] = HF_ENDPOINT,
) -> None:
    """Train a model for a competition (from scratch, a directory, or the best model on chain)."""
    from subnet.miner.config import TrainConfig
    from subnet.miner.train import train as run_training

    competition = _competition(competition, None, network, on_chain=init == "chain").id
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
        _fail(str(e))
    chain = model_store = None
    if init == "chain":
        chain, model_store = _chain(network, netuid), _store(store, hf_endpoint)
    from subnet.miner.run_dir import TrainingInterrupted

    try:
        result = run_training(config, chain=chain, store=model_store)
    except TrainingInterrupted as e:
        _fail(str(e), code=130)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if result.model_dir is not None:
        summary = {"model_dir": str(result.model_dir), "steps": result.steps, "final_loss": result.losses[-1],
                   "tokens_per_s": result.tokens_per_s, "mfu": result.mfu, "n_params": result.n_params}
        typer.echo(json.dumps(summary))


# ----------------------------------------------------------------------------- benchmark


@app.command()
def benchmark(
    candidate: Path = typer.Argument(..., exists=True, file_okay=False, help="The candidate model directory."),
    incumbent: str = typer.Option("chain", "--incumbent", help="A model directory, or 'chain' for the best on chain."),
    incumbent_age_blocks: Optional[float] = typer.Option(
        None, "--incumbent-age-blocks", help="Age of the incumbent (default: from its commitment, or 0)."),
    incumbent_eps: Optional[float] = typer.Option(
        None, "--incumbent-earned-eps", help="The advantage the incumbent earned (a validator's /scores shows it); "
        "default in mode 'earned': the cap, the most it can hold."),
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
    from rich.console import Console

    from subnet.miner.benchmark import benchmark as run_benchmark
    from subnet.miner.benchmark import plot_report, report_table

    comp = _competition(competition, competitions_file, network, on_chain=incumbent == "chain")
    console = Console(stderr=as_json)
    incumbent_block = None
    age = incumbent_age_blocks
    if incumbent == "chain":
        from subnet.miner.chain_models import best_model_on_chain

        chain = _chain(network, netuid)
        found = best_model_on_chain(chain, _store(store, hf_endpoint), comp, cache_dir.expanduser())
        if found is None:
            _fail(f"no valid {comp.id} model on chain to compare with; pass --incumbent DIR")
        incumbent_dir, incumbent_block = found.path, found.block
        if age is None:
            age = max(0, chain.current_block() - found.block)
        console.print(f"incumbent: {found.ref.short()} (uid {found.uid}, committed at block {found.block})")
    else:
        incumbent_dir = Path(incumbent)
        if not incumbent_dir.is_dir():
            _fail(f"--incumbent {incumbent!r} is neither 'chain' nor a directory")
    from subnet.hub.errors import ModelRejected

    try:
        report = run_benchmark(candidate, incumbent_dir, comp, incumbent_age_blocks=age or 0.0,
                               incumbent_block=incumbent_block, n_documents=documents, dataset=dataset, device=device,
                               earned_eps=incumbent_eps)
    except ModelRejected as e:
        _fail(f"a model would be rejected by validators: {e}")
    console.print(report_table(report))
    console.print(f"verdict: [bold]{report.verdict.text}[/bold]")
    if plot is not None:
        console.print(f"plot: {plot_report(report, plot)}")
    if as_json:
        sys.stdout.write(report.to_json() + "\n")


# ----------------------------------------------------------------------------- compare


@app.command()
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
    from rich.console import Console

    from subnet.hub.errors import ModelRejected
    from subnet.miner.run_compare import (
        plot_compare,
        report_json,
        report_tables,
        run_compare,
    )

    if len(targets) < 2:
        _fail("compare needs at least two targets")
    comp = _competition(competition, competitions_file, network)
    console = Console(stderr=as_json)
    try:
        report, resolved = run_compare(targets, comp, baseline=baseline, n_documents=documents, dataset=dataset,
                                       device=device, progress=lambda name: console.print(f"scored {name}"))
    except (ValueError, ModelRejected) as e:
        _fail(str(e))
    for table in report_tables(report):
        console.print(table)
    if plot is not None:
        console.print(f"plot: {plot_compare(report, resolved, plot)}")
    if as_json:
        sys.stdout.write(report_json(report) + "\n")


# ----------------------------------------------------------------------------- upload


@app.command()
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
    """Check, upload privately, commit on chain, verify, make public. Safe to re-run after a failure."""
    from subnet.chain.base import ChainError
    from subnet.miner.upload import UploadError, upload_model
    from subnet.preflight import (
        check_hub_write,
        hotkey_address,
        read_metagraph,
        registered_neuron,
    )

    comp = _competition(competition, competitions_file, network, on_chain=True)
    netuid = _netuid(network, netuid)
    model_store = _store(store, hf_endpoint)
    # Preflight, before anything is uploaded: the key signs, the hotkey is registered, the Hub takes writes.
    try:
        wallet = _wallet(wallet_name, wallet_hotkey, wallet_path)
        hotkey = hotkey_address(wallet)
        chain = _chain(network, netuid, wallet)
        neuron = registered_neuron(read_metagraph(chain, network), hotkey, network)
        account = check_hub_write(model_store, namespace)
    except CommandError as e:
        _fail(str(e))
    typer.echo(f"hotkey {hotkey} is uid {neuron.uid} on subnet {chain.netuid}"
               + (f"; Hub account {account}" if account else ""))
    incumbent_dir = None if incumbent in ("chain", "none") else Path(incumbent)
    try:
        ref = upload_model(
            model_dir, model_store, chain, hotkey, namespace, name, comp, force=force,
            incumbent_dir=incumbent_dir, incumbent_age_blocks=incumbent_age_blocks,
            find_incumbent=incumbent == "chain", cache_dir=cache_dir.expanduser(), n_documents=documents,
            device=device, echo=typer.echo, confirm_replace=None if yes else _ask, dry_run=dry_run,
        )
    except UploadError as e:
        _fail(str(e))
    except ChainError as e:  # e.g. the commit rate limit: re-running upload finishes the job
        _fail(f"the chain refused ({e.code}): {e}; re-run upload to finish")
    if ref is not None:
        typer.echo(ref.encode())


def _ask(question: str) -> bool:
    """A yes/no on the terminal; no terminal (or no answer) is a no: pass --yes in scripts."""
    try:
        return typer.confirm(question, default=False, err=True)
    except typer.Abort:
        return False


def main() -> None:
    raise SystemExit(run_command(app, prog_name="miner"))


if __name__ == "__main__":
    main()
