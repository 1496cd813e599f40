"""Checks a validator or a miner runs before any real work, so that a setup mistake costs seconds.

Without them a missing keyfile showed up after a full scoring round (as a traceback, every round),
an unregistered hotkey after a private upload, and a port in use as a traceback. Each check raises
`PreflightError` with one line that names the problem and the fix; the CLI prints it and exits 1.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Any

from subnet.chain.base import ChainError, Metagraph, Neuron
from subnet.commands.boundary import CommandError

PASSWORD_ENV = "BT_WALLET_PASSWORD"  # as bittensor's wallets read it


class PreflightError(CommandError):
    """A setup problem found before starting: one line, exit code 1."""


def hotkey_address(wallet: Any) -> str:
    """The wallet's hotkey ss58 address, after checking that the key can be loaded for signing.

    An encrypted hotkey needs BT_WALLET_PASSWORD (no prompt: validators and scripts run unattended).
    """
    keyfile = wallet.hotkey_file
    where = f"wallet {wallet.name!r}, hotkey {wallet.hotkey_str!r} in {wallet.path}"
    if not keyfile.exists_on_device():
        raise PreflightError(f"hotkey file {keyfile.path} not found ({where}); create it with "
                             f"`btcli wallet new-hotkey` or point --wallet.name/--wallet.hotkey/--wallet.path at it")
    try:
        if keyfile.is_encrypted():
            password = os.environ.get(PASSWORD_ENV)
            if not password:
                raise PreflightError(f"hotkey file {keyfile.path} is encrypted; set {PASSWORD_ENV}")
            return wallet.get_hotkey(password=password).ss58_address
        return wallet.hotkey.ss58_address
    except PreflightError:
        raise
    except Exception as e:  # noqa: BLE001 - corrupt file, wrong password, permissions: all one message
        raise PreflightError(f"cannot load hotkey file {keyfile.path}: {type(e).__name__}: {e}") from None


def read_metagraph(chain: Any, network: str) -> Metagraph:
    try:
        return chain.metagraph()
    except ChainError as e:
        raise PreflightError(f"cannot read subnet {chain.netuid} on {network}: {e}") from None


def registered_neuron(metagraph: Metagraph, hotkey: str, network: str) -> Neuron:
    """The hotkey's neuron; a hotkey that is not registered cannot commit models or set weights."""
    for neuron in metagraph.neurons:
        if neuron.hotkey == hotkey:
            return neuron
    if str(network).startswith("devnet:"):  # btcli cannot reach a devnet: its own wallets are registered
        chain_dir = Path(str(network)[len("devnet:"):]).expanduser().parent
        raise PreflightError(f"hotkey {hotkey} is not registered on subnet {metagraph.netuid} ({network}); "
                             f"btcli cannot register on a devnet: use a wallet `subnet devnet` registered there, "
                             f"--wallet.path {chain_dir / 'wallets'} --wallet.name validator (or miner-N)")
    raise PreflightError(f"hotkey {hotkey} is not registered on subnet {metagraph.netuid} ({network}); "
                         f"register it with `btcli subnets register --netuid {metagraph.netuid}`")


def check_port(host: str, port: int) -> None:
    """Fail now if the status API cannot listen on host:port (0 = no API, nothing to check)."""
    if not port:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise PreflightError(f"--api-host {host!r} cannot be resolved: {e.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        # As the server will (aiohttp sets SO_REUSEADDR): a port in TIME_WAIT is free, one in LISTEN is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as e:
            hint = ("another process listens there; stop it or pass --api-port (0 turns the API off)"
                    if e.errno == errno.EADDRINUSE else "pick another --api-host/--api-port")
            raise PreflightError(f"status API cannot bind {host}:{port}: {e.strerror}; {hint}") from None


def check_hub_write(store: Any, namespace: str) -> str:
    """Before any upload: the Hub token is valid, may write, and may write to `namespace`.

    Returns the account name. Stores without accounts (a local directory) pass.
    """
    api = getattr(store, "api", None)
    if api is None or not hasattr(api, "whoami"):
        return ""
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    try:
        info = api.whoami()
    except LocalTokenNotFoundError:
        raise PreflightError("no Hugging Face token: set HF_TOKEN to a token with write access "
                             "(https://huggingface.co/settings/tokens) or run `hf auth login`") from None
    except HfHubHTTPError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PreflightError(f"the Hub refused the token: {first}") from None
    except OSError as e:
        raise PreflightError(f"cannot reach the Hub at {getattr(api, 'endpoint', '?')}: {e}") from None
    user = str(info.get("name", ""))
    token = (info.get("auth") or {}).get("accessToken") or {}
    if token.get("role") == "read":
        raise PreflightError(f"the Hugging Face token of {user!r} is read-only; uploads need a write token")
    orgs = {str(o.get("name")) for o in info.get("orgs") or [] if isinstance(o, dict)}
    if namespace and namespace != user and namespace not in orgs:
        raise PreflightError(f"--namespace {namespace!r} is neither the token's user {user!r} nor one of its "
                             f"organisations {sorted(orgs)}")
    return user
