"""Choose a chain adapter from a network string, so the core never branches on devnet."""

from __future__ import annotations

from typing import Any

from subnet.chain.base import Chain

DEVNET_PREFIX = "devnet:"


def make_chain(network: str, netuid: int, wallet: Any = None, **kw: Any) -> Chain:
    """`devnet:PATH` -> LocalChain on the SQLite file PATH; finney | test | local | ws(s)://URL ->
    BittensorChain. Extra keywords go to the adapter (e.g. `block_time`, `timeout_s`)."""
    if not isinstance(network, str) or not network.strip():
        raise ValueError("network must be a non-empty string: finney | test | local | ws(s)://URL | devnet:PATH")
    network = network.strip()
    if network.startswith(DEVNET_PREFIX):
        path = network[len(DEVNET_PREFIX):]
        if not path:
            raise ValueError("devnet network needs a path: devnet:/path/to/chain.sqlite")
        from subnet.chain.local import LocalChain

        return LocalChain(path, netuid=netuid, wallet=wallet, **kw)
    if network not in ("finney", "test", "local") and not network.startswith(("ws://", "wss://")):
        raise ValueError(
            f"unknown network {network!r}: expected finney | test | local | ws(s)://URL | devnet:PATH"
        )
    from subnet.chain.bittensor import BittensorChain

    return BittensorChain(network, netuid, wallet=wallet, **kw)
