"""Choose a chain adapter from a network string, so the core never branches on devnet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from subnet.chain.base import Chain

DEVNET_PREFIX = "devnet:"


def make_chain(network: str, netuid: int, wallet: Any = None, **kw: Any) -> Chain:
    """`devnet:PATH` -> LocalChain on the existing SQLite file PATH (only `subnet devnet`, through
    LocalChain itself, creates one); finney | test | local | ws(s)://URL -> BittensorChain. Extra
    keywords go to the adapter (e.g. `block_time`, `timeout_s`)."""
    problem = network_problem(network)
    if problem:
        raise ValueError(problem)
    network = network.strip()
    if network.startswith(DEVNET_PREFIX):
        from subnet.chain.local import LocalChain

        return LocalChain(Path(network[len(DEVNET_PREFIX):]).expanduser(), netuid=netuid, wallet=wallet, **kw)
    from subnet.chain.bittensor import BittensorChain

    return BittensorChain(network, netuid, wallet=wallet, **kw)


def network_problem(network: object) -> str:
    """Why `network` names no chain ('' when it does): lets a CLI refuse it before connecting."""
    if not isinstance(network, str) or not network.strip():
        return "network must be a non-empty string: finney | test | local | ws(s)://URL | devnet:PATH"
    network = network.strip()
    if network.startswith(DEVNET_PREFIX):
        return devnet_path_problem(network[len(DEVNET_PREFIX):])
    if network not in ("finney", "test", "local") and not network.startswith(("ws://", "wss://")):
        return f"unknown network {network!r}: expected finney | test | local | ws(s)://URL | devnet:PATH"
    return ""


def devnet_path_problem(path: str) -> str:
    """Why `path` is no devnet chain ('' when it is a file). A typo must not silently start an empty
    chain (whose only advice would be to register on it): only `subnet devnet` creates one."""
    if not path:
        return "devnet network needs a path: devnet:/path/to/chain.sqlite"
    where = Path(path).expanduser()
    if not where.is_file():
        what = "is a directory, not a chain file" if where.is_dir() else "does not exist"
        return (f"devnet chain {path} {what}; create a devnet with `subnet devnet --dir DIR` "
                f"and pass --network devnet:DIR/chain.sqlite")
    return ""
