"""What a validator checks and says before its first round.

Local checks first (the status API port, the hotkey keyfile), then the chain (registration and
validator permit): all before a round is scored, so a setup mistake costs seconds, is reported as
one line and ends the process with exit code 1. Then one banner line says what this process is.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from subnet.chain.base import Chain, Neuron
from subnet.preflight import (
    check_port,
    hotkey_address,
    read_metagraph,
    registered_neuron,
)
from subnet.validator.config import ValidatorConfig

log = logging.getLogger("subnet.validator")


def check_local(config: ValidatorConfig, wallet: Any) -> str:
    """The port is free and the hotkey loads; returns the hotkey address."""
    check_port(config.api_host, config.api_port)
    return hotkey_address(wallet)


def check_chain(chain: Chain, config: ValidatorConfig, hotkey: str) -> Neuron:
    """The hotkey is registered; a missing validator permit is a warning (stake can still arrive)."""
    neuron = registered_neuron(read_metagraph(chain, config.network), hotkey, config.network)
    if config.set_weights and not neuron.validator_permit:
        log.warning("hotkey %s (uid %d) has no validator permit on subnet %d: rounds run and scores are served, "
                    "but the chain refuses its weights until it holds enough stake", hotkey, neuron.uid,
                    config.netuid)
    return neuron


def endpoint_of(network: str) -> str:
    """The websocket a network name stands for, as bittensor resolves it (BT_CHAIN_ENDPOINT for local)."""
    try:
        from bittensor.settings import NETWORKS
    except ImportError:  # pragma: no cover - bittensor is a dependency
        return network
    url = NETWORKS.get(network)
    return f"{network} ({url})" if url else network


def log_banner(config: ValidatorConfig, hotkey: str, neuron: Neuron, competitions: Iterable[str],
               api_url: str | None) -> None:
    from subnet import __version__, git_commit

    log.info("subnet validator %s (commit %s): netuid %d on %s, hotkey %s, uid %d%s, competitions %s, device %s, "
             "status API %s", __version__, git_commit(), config.netuid, endpoint_of(config.network), hotkey,
             neuron.uid, "" if neuron.validator_permit else " (no validator permit)", ",".join(sorted(competitions)),
             config.device, api_url or "off",
             extra={"event": "start", "version": __version__, "commit": git_commit(), "netuid": config.netuid,
                    "network": config.network, "hotkey": hotkey, "uid": neuron.uid,
                    "permit": neuron.validator_permit, "competitions": sorted(competitions),
                    "device": config.device, "api": api_url})
