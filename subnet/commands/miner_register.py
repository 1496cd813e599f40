"""`subnet miner register`: a fresh hotkey joins a devnet.

On a real network registration costs TAO and is btcli's job (`btcli subnets register`); a devnet's
chain is a local file btcli cannot reach, and every hotkey `subnet devnet` made already holds a
commitment, so a newcomer following the README needs their own registered hotkey to publish with.
This command makes the wallet's keys when asked (`--create`, unencrypted: a devnet is a toy) and
registers the hotkey on the devnet's subnet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from subnet.commands.boundary import CommandError
from subnet.commands.miner_options import NETUID, NETWORK, WALLET_HOTKEY, WALLET_NAME, WALLET_PATH, domain_errors


def add_command(app: typer.Typer) -> None:
    app.command(name="register")(domain_errors(register))


def register(
    network: str = NETWORK,
    netuid: Optional[int] = NETUID,
    wallet_name: str = WALLET_NAME,
    wallet_hotkey: str = WALLET_HOTKEY,
    wallet_path: str = WALLET_PATH,
    create: bool = typer.Option(False, "--create", help="Create the wallet's coldkey and hotkey if missing "
                                "(unencrypted, for a devnet)."),
) -> None:
    """Register the wallet's hotkey on a devnet (devnet:PATH); on a real network use btcli."""
    from subnet.chain.factory import DEVNET_PREFIX
    from subnet.commands.miner_options import chain_for, netuid_for, wallet_for

    netuid = netuid_for(network, netuid)
    if not network.startswith(DEVNET_PREFIX):
        raise typer.BadParameter(f"registering on {network!r} costs TAO and is btcli's job: `btcli subnets register "
                                 f"--netuid {netuid} --wallet.name {wallet_name} --wallet.hotkey {wallet_hotkey}`",
                                 param_hint="--network")
    if create:
        from subnet.chain.keys import create_wallet

        wallet = create_wallet(Path(wallet_path).expanduser(), wallet_name, wallet_hotkey)
    else:
        wallet = wallet_for(wallet_name, wallet_hotkey, wallet_path)
        if not wallet.hotkey_file.exists_on_device():
            raise CommandError(f"hotkey file {wallet.hotkey_file.path} not found; pass --create to make the "
                               "wallet's keys (unencrypted, for a devnet)")
    hotkey, coldkey = wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address
    chain = chain_for(network, netuid)
    try:
        uid = chain.register(hotkey, coldkey)
    finally:
        chain.close()
    typer.echo(f"hotkey {hotkey} (wallet {wallet_name}/{wallet_hotkey}) is uid {uid} on subnet {netuid} of {network}")
