"""What every `subnet miner` command shares: bittensor-style flags, the chain, store, wallet and
competition they name, and the one way a domain failure leaves a command.

A chain that cannot be reached or refuses, a store that fails: these are the user's world, not a bug,
so `domain_errors` reports them through the error boundary (`subnet.commands.boundary.fail`) as
one line `error: ...` and exit 1, never a traceback.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import typer

from subnet.commands.boundary import CommandError, fail

F = TypeVar("F", bound=Callable[..., Any])

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
INCUMBENT_EPS = typer.Option(
    None, "--incumbent-earned-eps", help="The advantage the incumbent earned (a validator's /scores shows it); "
    "default in mode 'earned' (the validators' default): the cap, the most it can hold.")
CACHE_DIR = typer.Option(Path("~/.cache/subnet/miner"), "--cache-dir", envvar="SUBNET_CACHE_DIR",
                         help="Where models downloaded from the chain's miners go.")


def competition_for(competition_id: Optional[str], competitions_file: Optional[Path], network: str,
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


def wallet_for(name: str, hotkey: str, path: str):
    import bittensor as bt

    return bt.Wallet(name=name, hotkey=hotkey, path=str(Path(path).expanduser()))


def netuid_for(network: str, netuid: Optional[int]) -> int:
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


def chain_for(network: str, netuid: Optional[int], wallet=None):
    from subnet.chain.factory import make_chain

    return make_chain(network, netuid_for(network, netuid), wallet=wallet)


def store_for(spec: str, hf_endpoint: Optional[str]):
    from subnet.hub.factory import make_store

    try:
        return make_store(spec, hf_endpoint)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None



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


def domain_errors(command: F) -> F:
    """Run `command` so that a domain failure leaves it as the error boundary's one line `error: ...`
    and exit code (`subnet.commands.boundary.fail`): a `CommandError` (preflight, an interrupted run),
    and the chain's and the store's failures, which are the user's world (an unreachable endpoint, a
    refusal), not bugs. Also where `run_command` is not in the way (typer's CliRunner, scripts)."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        from subnet.chain.base import ChainError
        from subnet.hub.store import StoreError

        try:
            return command(*args, **kwargs)
        except CommandError as e:
            fail(str(e), code=e.exit_code)
        except ChainError as e:
            fail(f"chain ({e.code}): {e}")
        except StoreError as e:
            fail(f"model store: {e}")

    return run  # type: ignore[return-value]


def output_console(stderr: bool = False):
    """A rich console for tables and notes. Piped or captured output is not cut to 80 columns: a
    model's full name in a log beats a tidy wrap (rich would otherwise assume an 80-column terminal)."""
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=1000, soft_wrap=True)
    return console
