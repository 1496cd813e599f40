"""Wallets for devnet and tests: real bittensor sr25519 keypairs, created without prompts.

Keyfiles are written unencrypted, so validators and miners started by scripts never block on a
password prompt. Real deployments bring their own (possibly encrypted) wallets; see
`subnet.chain.bittensor` for how those are unlocked non-interactively.
"""

from __future__ import annotations

from pathlib import Path

import bittensor as bt


def create_wallet(path: str | Path, name: str, hotkey: str = "default") -> bt.Wallet:
    """The wallet `name`/`hotkey` under `path`, creating whichever keys are missing.

    Idempotent: existing keys are reused, never overwritten, so two calls (or two processes)
    return the same addresses.
    """
    if not name or "/" in name:
        raise ValueError(f"wallet name must be non-empty and contain no '/': {name!r}")
    if not hotkey or "/" in hotkey:
        raise ValueError(f"hotkey name must be non-empty and contain no '/': {hotkey!r}")
    wallet = bt.Wallet(name=name, hotkey=hotkey, path=str(Path(path).expanduser()))
    if not wallet.coldkeypub_file.exists_on_device():
        _create_quietly(lambda: wallet.create_new_coldkey(use_password=False, overwrite=False, suppress=True))
    if not wallet.hotkey_file.exists_on_device():
        _create_quietly(lambda: wallet.create_new_hotkey(use_password=False, overwrite=False, suppress=True))
    return wallet


def _create_quietly(create) -> None:
    """Run a key creation; losing a creation race to another process is fine (its key is reused)."""
    try:
        create()
    except FileExistsError:
        pass
