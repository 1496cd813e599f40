"""`subnet devnet`: the whole subnet on one CPU, no network.

A local chain (SQLite), a local model store (a directory), the generated corpus and the shipped
tiny tokenizer; miners that train for clearly different lengths of time, a copy-cat that re-uploads
the best miner's weights under its own hotkey, and one validator that scores them all, sets weights
on the local chain and serves its scores. It runs the same code paths as mainnet, with the local
adapters chosen by configuration.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from subnet.commands.boundary import CommandError
from subnet.commands.devnet_validators import register_validators, run_staggered, vtrust_report
from subnet.commands.scores import wide_console

NETUID = 1
COMPETITION = "tiny"
SEED_WINDOW = 10  # blocks; mainnet uses 150
ELIGIBILITY_MARGIN = 2
REVEAL_PERIOD = 4  # blocks from a weights commit to its reveal, with --commit-reveal
MARKER = ".subnet-devnet"  # written into every directory a devnet creates: only those are ever wiped
KEEP_ROUND_INTERVAL_S = 30.0  # with --keep: rounds at a pace a person can follow, not one a second
KEEP_API_PORT = 8091  # the status API's port with --keep; without --keep there is none unless --api-port asks


def status_port(keep: bool, api_port: int | None) -> int:
    """The status API's port: --api-port when given, else 8091 with --keep (a person browses a
    running devnet) and none without (a finished devnet serves nothing, so it must not need a port)."""
    if api_port is not None:
        return api_port
    return KEEP_API_PORT if keep else 0


class DevnetDirectoryError(CommandError):
    """The devnet directory holds something the devnet did not create."""


def prepare_directory(directory: Path, force: bool = False) -> Path:
    """Empty `directory` for a new devnet, refusing to delete what a devnet did not create.

    A directory is reused (wiped) only when it is empty or carries the marker file of an earlier
    devnet; anything else needs `--force`. `subnet devnet --dir ~/project` must never eat a project.
    """
    root = directory.expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise DevnetDirectoryError(f"--dir {directory} is a file, not a directory")
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).exists() and not force:
            raise DevnetDirectoryError(f"--dir {directory} is not empty and was not created by `subnet devnet`; "
                                       "choose another directory or pass --force to delete its contents")
        if root == Path.home() or root == Path(root.anchor):
            raise DevnetDirectoryError(f"refusing to delete {root}")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("created by `subnet devnet`; the next devnet run in this directory deletes it\n")
    return root


@dataclass
class DevnetPlan:
    directory: Path
    miners: int = 3
    rounds: int = 3
    base_steps: int = 25  # miner i trains base_steps * 4**i steps
    block_time: float = 0.5
    api_port: int = 0
    keep: bool = False
    commit_reveal: bool = False  # weights are committed, and revealed by the local chain REVEAL_PERIOD blocks later
    force: bool = False
    validators: int = 1  # several: validator k joins k rounds after the first (subnet.commands.devnet_validators)

    @property
    def steps(self) -> list[int]:
        return [self.base_steps * 4**i for i in range(self.miners)]


def run_devnet(plan: DevnetPlan, console: Console) -> dict:
    from subnet.chain.keys import create_wallet
    from subnet.chain.local import LocalChain
    from subnet.competitions import get_competition
    from subnet.hub.local import LocalStore

    from subnet.preflight import check_port

    check_port("127.0.0.1", plan.api_port)  # before any work: a busy port must not cost the training
    root = prepare_directory(plan.directory, plan.force)
    competition = get_competition(COMPETITION)
    chain_path, store_root, wallets_dir = root / "chain.sqlite", root / "store", root / "wallets"
    store = LocalStore(store_root)

    with LocalChain(chain_path, netuid=NETUID, block_time=plan.block_time) as chain:
        chain.set_weights_rate_limit(2)
        chain.set_commit_reveal(plan.commit_reveal, REVEAL_PERIOD)
        validator_hotkeys = register_validators(chain, wallets_dir, plan.validators)
        console.print(f"[bold]devnet[/bold] in {root}: chain block time {plan.block_time}s, netuid {NETUID}")

        roles: dict[str, str] = {}
        model_dirs: list[Path] = []
        for i, steps in enumerate(plan.steps):
            wallet = create_wallet(wallets_dir, f"miner-{i}")
            hotkey = wallet.hotkey.ss58_address
            chain.register(hotkey, wallet.coldkeypub.ss58_address)
            model_dir = _train_miner(root / "runs" / f"miner-{i}", steps, seed=i, console=console)
            model_dirs.append(model_dir)
            ref = _publish(model_dir, store, chain_path, wallet, f"miner{i}", competition, console)
            roles[hotkey] = f"trained:{steps}"
            best_hotkey = hotkey  # the last miner trains longest
            console.print(f"  miner {i} trained {steps} steps and committed {ref.short()}")

        best = len(model_dirs) - 1
        # A copier only sees the weights once the original repo is public, after its commit block.
        chain.advance(1)
        copycat = create_wallet(wallets_dir, "copycat")
        chain.register(copycat.hotkey.ss58_address, copycat.coldkeypub.ss58_address)
        stolen = root / "runs" / "copycat"
        shutil.copytree(model_dirs[best], stolen, ignore=shutil.ignore_patterns(".*"))
        ref = _publish(stolen, store, chain_path, copycat, "totally-original", competition, console)
        roles[copycat.hotkey.ss58_address] = f"copycat:{chain.metagraph().uid_of(best_hotkey)}"
        console.print(f"  copy-cat re-uploaded miner {best}'s weights as {ref.short()}")

        # Commitments must predate the data seed that judges them: move the chain past the window.
        chain.advance(SEED_WINDOW + ELIGIBILITY_MARGIN + 1)

    summary = _run_validator(root, plan, console)
    if plan.commit_reveal:
        _wait_for_reveals(root, plan, console)
    report = _report(root, roles, summary, console)
    if plan.validators > 1:
        report["validators"] = vtrust_report(root, NETUID, validator_hotkeys, console)
    return report


def _wait_for_reveals(root: Path, plan: DevnetPlan, console: Console) -> None:
    """With commit-reveal, the validator's last commit is applied only REVEAL_PERIOD blocks later."""
    from subnet.chain.local import LocalChain

    with LocalChain(root / "chain.sqlite", netuid=NETUID) as chain:
        pending = chain.pending_commits()
        if pending:
            console.print(f"waiting for {len(pending)} weights commit(s) to be revealed at block "
                          f"{max(p[2] for p in pending)}")
        deadline = time.monotonic() + (REVEAL_PERIOD + 2) * plan.block_time
        while chain.pending_commits() and time.monotonic() < deadline:
            time.sleep(plan.block_time / 2)


def _train_miner(out_dir: Path, steps: int, seed: int, console: Console) -> Path:
    from subnet.miner.config import TrainConfig
    from subnet.miner.train import train

    config = TrainConfig(competition=COMPETITION, out_dir=str(out_dir), steps=steps, seed=1000 + seed,
                         warmup_steps=min(20, max(1, steps // 5)), log_every=max(1, steps // 4))
    started = time.monotonic()
    result = train(config, echo=lambda line: console.print(f"    [dim]{line}[/dim]"))
    console.print(f"    [dim]{steps} steps in {time.monotonic() - started:.0f}s, {result.tokens_per_s:,.0f} tokens/s[/dim]")
    assert result.model_dir is not None
    return result.model_dir


def _publish(model_dir: Path, store, chain_path: Path, wallet, name: str, competition, console: Console):
    from subnet.chain.local import LocalChain
    from subnet.miner.upload import UploadOptions, upload_model

    with LocalChain(chain_path, netuid=NETUID, wallet=wallet) as chain:
        hotkey = wallet.hotkey.ss58_address
        # Progress goes to the console, so `--json` leaves stdout with the JSON object only.
        return upload_model(model_dir, store, chain, hotkey, namespace=f"devnet-{hotkey[:6].lower()}", name=name,
                            competition=competition, options=UploadOptions(force=True),
                            echo=lambda line: console.print(f"    {line}", style="dim", markup=False))


def _run_validator(root: Path, plan: DevnetPlan, console: Console):
    from subnet.validator.config import ValidatorConfig
    from subnet.validator.daemon import run_validator

    config = ValidatorConfig(
        netuid=NETUID,
        network=f"devnet:{root / 'chain.sqlite'}",
        wallet_name="validator",
        wallet_path=str(root / "wallets"),
        state_dir=root / "validator",
        competitions=(COMPETITION,),
        store=f"local:{root / 'store'}",
        api_port=plan.api_port,
        round_interval_s=max(KEEP_ROUND_INTERVAL_S, 2 * plan.block_time) if plan.keep else 2 * plan.block_time,
        max_rounds=None if plan.keep else plan.rounds,
        timeout_per_model_s=300.0,
        seed_window_blocks=SEED_WINDOW,
        eligibility_margin_blocks=ELIGIBILITY_MARGIN,
        weights_interval_blocks=2,
        min_free_disk_bytes=0,
        scoring_mode="inprocess",
    )
    if plan.validators > 1 and not plan.keep:
        codes = run_staggered(root, config, plan.validators, plan.rounds, console)
        return max(codes)
    rounds = (f"a round every {config.round_interval_s:.0f} s until Ctrl-C" if plan.keep
              else f"{plan.rounds} round(s)")
    console.print(f"[bold]validator[/bold]: {rounds}, state in {config.state_path}"
                  + (f", status API on http://127.0.0.1:{plan.api_port}" if plan.api_port else ""))
    return run_validator(config)


def _report(root: Path, roles: dict[str, str], exit_code: int, console: Console) -> dict:
    from subnet.chain.local import LocalChain
    from subnet.commands.scores import render, rows_from_state

    state_dir = root / "validator"
    rows = rows_from_state(state_dir)
    with LocalChain(root / "chain.sqlite", netuid=NETUID) as chain:
        weights_set = bool(chain.weight_history())
    render(rows, console, title="devnet scores")
    scores = [
        {
            "uid": r["uid"], "hotkey": r["hotkey"], "weight": r["weight"], "mean_loss": r["mean_loss"],
            "ci_low": r["ci_low"], "ci_high": r["ci_high"], "status": r["status"], "role": roles.get(r["hotkey"], ""),
        }
        for r in rows
    ]
    return {"scores": scores, "weights_set": weights_set, "state_dir": str(state_dir), "validator_exit": exit_code}


def register(app: typer.Typer) -> None:
    @app.command("devnet")
    def devnet(
        miners: int = typer.Option(3, "--miners", min=1, max=6, help="Miners that train (each 4x longer than the last)."),
        rounds: int = typer.Option(3, "--rounds", min=1, help="Validator rounds to run."),
        directory: Path = typer.Option(Path("devnet"), "--dir",
                                       help="Devnet directory; recreated if a devnet made it, else must be empty."),
        force: bool = typer.Option(False, "--force", help="Delete --dir's contents even if a devnet did not create it."),
        base_steps: int = typer.Option(25, "--base-steps", min=1, help="Training steps of the weakest miner."),
        block_time: float = typer.Option(0.5, "--block-time", help="Seconds per local block."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object on the last line."),
        commit_reveal: bool = typer.Option(False, "--commit-reveal",
                                           help="Commit-reveal weights: committed, revealed by the chain "
                                                f"{REVEAL_PERIOD} blocks later."),
        keep: bool = typer.Option(False, "--keep", help=f"Keep the validator and its status API running (a round every "
                                                         f"{KEEP_ROUND_INTERVAL_S:.0f} s) until Ctrl-C."),
        api_port: Optional[int] = typer.Option(None, "--api-port", min=0, max=65535,
                                               help=f"Status API port (0: none). Default: {KEEP_API_PORT} with "
                                                    "--keep, none without."),
        validators: int = typer.Option(1, "--validators", min=1, max=8,
                                       help="Validators on the chain; validator k joins k rounds after the first, "
                                            "and each one's vtrust is printed at the end."),
    ) -> None:
        """Run the whole subnet locally: chain, store, miners, a copy-cat and a validator."""
        from subnet.logs import setup_logging

        console = wide_console(stderr=as_json)
        setup_logging("INFO", "auto")  # the validator's round lines, on stderr
        plan = DevnetPlan(directory=directory, miners=miners, rounds=rounds, base_steps=base_steps,
                          block_time=block_time, api_port=status_port(keep, api_port), keep=keep,
                          commit_reveal=commit_reveal, force=force, validators=validators)
        started = time.monotonic()
        result = run_devnet(plan, console)
        console.print(f"devnet finished in {time.monotonic() - started:.0f}s; weights set on chain: {result['weights_set']}")
        if as_json:
            print(json.dumps(result))
        raise typer.Exit(0 if result["weights_set"] else 1)
