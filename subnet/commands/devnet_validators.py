"""`subnet devnet --validators N`: several validators on one local chain, and each one's vtrust.

Validator k joins k rounds after the first (a fresh validator on a running subnet); then they take
turns, one round each, on the same chain, store and windows, as independent daemons with their own
state. At the end the chain's own epoch (`subnet.chain.local`, Yuma as the runtime computes it)
gives each validator's vtrust from the weights they set: agreement measured, not assumed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rich.console import Console
from rich.table import Table


def validator_name(k: int) -> str:
    return "validator" if k == 0 else f"validator-{k}"


def register_validators(chain, wallets_dir: Path, count: int) -> list[str]:
    """N validators with equal stake and permits; returns their hotkeys in order."""
    from subnet.chain.keys import create_wallet

    hotkeys = []
    for k in range(count):
        wallet = create_wallet(wallets_dir, validator_name(k))
        chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address, stake=1000.0, validator_permit=True)
        hotkeys.append(wallet.hotkey.ss58_address)
    return hotkeys


def run_staggered(root: Path, base_config, count: int, rounds: int, console: Console) -> list[int]:
    """Each validator runs `rounds` rounds, validator k starting at turn k; returns each one's exit code."""
    from subnet.validator.daemon import run_validator

    codes = [0] * count
    for turn in range(rounds + count - 1):
        for k in range(count):
            if not (k <= turn < k + rounds):
                continue
            config = dataclasses.replace(base_config, wallet_name=validator_name(k), max_rounds=1,
                                         state_dir=root / validator_name(k), api_port=0 if k else base_config.api_port)
            if turn == k:
                console.print(f"[bold]{validator_name(k)}[/bold] starts (turn {turn}), state in {config.state_path}")
            codes[k] = codes[k] or run_validator(config)
    return codes


def vtrust_report(root: Path, netuid: int, hotkeys: list[str], console: Console) -> list[dict]:
    """Each validator's vtrust and top uid from the chain's epoch over the weights on chain."""
    from subnet.chain.local import LocalChain

    with LocalChain(root / "chain.sqlite", netuid=netuid) as chain:
        graph = chain.metagraph()
        by_hotkey = {n.hotkey: n for n in graph.neurons}
        rows = []
        for k, hotkey in enumerate(hotkeys):
            weights = chain.weights_of(hotkey)
            top = max(weights, key=weights.get) if weights else None
            neuron = by_hotkey.get(hotkey)
            rows.append({"name": validator_name(k), "hotkey": hotkey, "uid": neuron.uid if neuron else None,
                         "vtrust": neuron.validator_trust if neuron else 0.0, "top_uid": top,
                         "weights_set": bool(weights)})
    table = Table(title="validators: vtrust from the chain's consensus")
    for column in ("validator", "uid", "top uid", "vtrust"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["name"], str(r["uid"]), str(r["top_uid"]), f"{r['vtrust']:.3f}")
    console.print(table)
    return rows
