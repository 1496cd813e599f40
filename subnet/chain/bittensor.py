"""The real chain, through the bittensor v11 SDK.

The SDK is async underneath; this adapter owns one private event loop on a daemon thread and runs
an awaited `bt.Subtensor(network, substrate=...)` client on it, so every call gets a real timeout
(`asyncio.wait_for`, which cancels the request) instead of a thread left blocked forever.

Failure policy, in one place:
- every call is bounded by `timeout_s`;
- a dropped connection (or a read that timed out) is retried once on a fresh connection; a write
  that timed out, or that may already have been submitted, is not retried, because it may have landed;
- an RPC endpoint's policy refusal (`bt.RpcPolicyError`) is not a dropped connection: it becomes
  'rate_limited' with the endpoint's `retry_after`, and nothing is retried at once;
- every other exception out of the SDK becomes a code (see `subnet.chain.sdk_errors`);
- `set_weights` never raises: refusals and failures come back as `WeightsResult(success=False,
  code=...)`, including a local rate-limit refusal made without submitting anything;
- `commit` and the reads raise `subnet.chain.base.ChainError` with a short `code`.

Weights go through `RuntimeRuleSetWeights` (the SDK's `SetWeights`, with the runtime's minimum
weight count): plaintext on subnets without commit-reveal, a timelocked commit (version 4) on those
with it, in which case the result carries the drand `reveal_round`.

Signing uses the wallet's hotkey. An encrypted hotkey keyfile is unlocked with the password in
`BT_WALLET_PASSWORD` (never a prompt: validators and miners run unattended).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import bittensor as bt

from subnet.chain.base import ChainError, Commitment, Metagraph, Neuron, WeightsResult
from subnet.chain.local import MAX_COMMITMENT_BYTES, weights_problem
from subnet.chain.sdk_errors import code_of, translate
from subnet.chain.sdk_weights import RuntimeRuleSetWeights

log = logging.getLogger(__name__)

T = TypeVar("T")
PASSWORD_ENV = "BT_WALLET_PASSWORD"
RATE_LIMIT_TTL_S = 600.0  # re-read the weights rate limit at most this often
_CLOSE_TIMEOUT_S = 5.0
# What a dropped or unreachable endpoint looks like from above the SDK's transport (OSError
# covers unreachable networks; local file errors are excluded in `_is_connection_error`).
_CONNECTION_ERRORS = (bt.RpcConnectionError, bt.ConnectionNotReady, ConnectionError, OSError)
_LOCAL_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
FINALITY_POLL_S = 2.0  # how often to look for finality while waiting for a seed block

SubstrateSource = Any  # a bt.Substrate, or a zero-argument callable returning a fresh one


class BittensorChain:
    """`Chain` on a real subtensor: network is finney | test | local | ws(s)://URL.

    `substrate` swaps the SDK's transport (e.g. an in-memory fake for tests): either a Substrate
    object (reconnecting closes and reopens it) or a callable returning a fresh one per connection.
    """

    def __init__(self, network: str, netuid: int, wallet: Any = None, timeout_s: float = 60,
                 substrate: SubstrateSource = None) -> None:
        if not timeout_s or timeout_s <= 0 or not math.isfinite(timeout_s):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
        from bittensor.settings import resolve_endpoint

        self.network, self.endpoint = resolve_endpoint(network)  # ValueError names the known networks
        self.netuid = int(netuid)
        self.wallet = wallet
        self.timeout_s = float(timeout_s)
        self._substrate_source = substrate
        self._client: Any = None
        self._substrate: Any = None
        self._signer: Any = None
        self._last_set_block: int | None = None
        self._rate_limit: tuple[int, float] | None = None  # (blocks, monotonic time read)
        self._call_lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bittensor-chain", daemon=True)
        self._thread.start()
        self._closed = False

    # ------------------------------------------------------------------ connection

    def _new_substrate(self) -> Any:
        source = self._substrate_source
        if source is None:
            from bittensor.settings import (
                default_archive_endpoints,
                default_fallback_endpoints,
            )

            return bt.RpcSubstrate(
                self.endpoint,
                fallback_endpoints=[u for u in default_fallback_endpoints(self.network) if u != self.endpoint],
                archive_endpoints=default_archive_endpoints(self.network),
            )
        return source() if callable(source) else source

    async def _connect(self) -> None:
        substrate = self._new_substrate()
        client = await bt.Subtensor(self.network, substrate=substrate)
        self._client, self._substrate = client, substrate

    async def _disconnect(self) -> None:
        client, self._client, self._substrate = self._client, None, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), _CLOSE_TIMEOUT_S)

    def _attempt(self, operation: Callable[[Any, Any], Awaitable[T]]) -> T:
        async def run() -> T:
            if self._client is None:
                await self._connect()
            return await operation(self._client, self._substrate)

        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(run(), self.timeout_s), self._loop)
        try:
            return future.result(self.timeout_s + _CLOSE_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer within {self.timeout_s:g}s") from None

    def _reset_connection(self) -> None:
        future = asyncio.run_coroutine_threadsafe(self._disconnect(), self._loop)
        with contextlib.suppress(Exception):
            future.result(_CLOSE_TIMEOUT_S + 1)

    def _run(self, what: str, operation: Callable[[Any, Any], Awaitable[T]], *, write: bool = False,
             retry_write: Callable[[], bool] = lambda: True) -> T:
        """Run `operation(client, substrate)` on the loop: bounded by timeout_s, one retry on a
        fresh connection after a dropped one (and after a timed-out read; a write only while
        `retry_write()` says nothing was submitted). Other SDK errors pass through."""
        if self._closed:
            raise ChainError(f"{what}: this chain handle is closed", code="closed")
        with self._call_lock:
            for attempt in (1, 2):
                try:
                    return self._attempt(operation)
                except TimeoutError as e:
                    self._reset_connection()
                    if write or attempt == 2:
                        raise ChainError(f"{what}: {e}", code="timeout") from e
                    log.warning("%s timed out; retrying on a fresh connection", what)
                except bt.RpcPolicyError as e:  # the endpoint said no: retrying at once makes it worse
                    raise translate(what, e) from e
                except _CONNECTION_ERRORS as e:
                    if isinstance(e, _LOCAL_OS_ERRORS):
                        raise
                    self._reset_connection()
                    if attempt == 2 or (write and not retry_write()):
                        raise ChainError(f"{what}: connection to {self.endpoint} failed: {e}", code="connection") from e
                    log.warning("%s: connection lost (%s); reconnecting once", what, e)
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, what: str, operation: Callable[[Any, Any], Awaitable[T]]) -> T:
        """A read; any exception out of the SDK becomes a ChainError with a code."""
        try:
            return self._run(what, operation)
        except ChainError:
            raise
        except Exception as e:
            raise translate(what, e) from e

    # ------------------------------------------------------------------ signing

    def _hotkey_signer(self) -> Any:
        """The hotkey keypair, unlocked once. A bt.Wallet's encrypted hotkey is opened with
        BT_WALLET_PASSWORD; other wallet-shaped objects (or a bare keypair) are used as given."""
        if self.wallet is None:
            raise ChainError("this chain handle has no wallet; it is read-only", code="no_wallet")
        if self._signer is None:
            wallet = self.wallet
            if isinstance(wallet, bt.Wallet):
                keyfile = wallet.hotkey_file
                try:
                    if keyfile.is_encrypted():
                        password = os.environ.get(PASSWORD_ENV)
                        if not password:
                            raise ChainError(f"hotkey {keyfile.path} is encrypted; set {PASSWORD_ENV}",
                                             code="wallet_locked")
                        self._signer = wallet.get_hotkey(password=password)
                    else:
                        self._signer = wallet.hotkey
                except ChainError:
                    raise
                except Exception as e:  # missing file, wrong password, corrupt keyfile
                    raise ChainError(f"cannot load hotkey {keyfile.path}: {e}", code="wallet_locked") from e
            else:
                self._signer = getattr(wallet, "hotkey", wallet)
        return self._signer

    # ------------------------------------------------------------------ Chain protocol

    def current_block(self) -> int:
        return int(self._read("current block", lambda c, s: c.block()))

    def block_hash(self, block: int) -> str:
        """The hash of a finalized block: a block past the head is 'unknown_block'; one not final
        yet is waited for (within timeout_s), then 'not_finalized'."""
        block = int(block)
        if block < 0:
            raise ChainError(f"block {block} does not exist", code="unknown_block")
        budget = 0.8 * self.timeout_s

        async def finalized_hash(client: Any, substrate: Any) -> str:
            head = int(await substrate.block_number())
            if block > head:
                raise ChainError(f"block {block} does not exist yet (head {head})", code="unknown_block")
            waited = 0.0
            while int(await substrate.finalized_block_number()) < block:
                if waited >= budget:
                    raise ChainError(f"block {block} is not finalized after {waited:.0f}s", code="not_finalized")
                await asyncio.sleep(min(FINALITY_POLL_S, budget))
                waited += min(FINALITY_POLL_S, budget)
            try:
                return await substrate.block_hash(block)
            except bt.ChainError as e:
                raise ChainError(f"block {block}: {e.message}", code="unknown_block") from e

        value = self._read(f"hash of block {block}", finalized_hash)
        if not isinstance(value, str) or not value.startswith("0x"):
            raise ChainError(f"block {block} has no hash on {self.network} (got {value!r})", code="unknown_block")
        return value

    def metagraph(self) -> Metagraph:
        graph = self._read("metagraph", lambda c, s: c.subnets.metagraph(self.netuid, commitments=False))
        if graph is None:
            raise ChainError(f"subnet {self.netuid} does not exist on {self.network}", code="subnet_not_exists")
        neurons = tuple(
            Neuron(uid=n.uid, hotkey=n.hotkey, coldkey=n.coldkey, stake=float(n.total_stake.amount),
                   validator_permit=bool(n.validator_permit), last_update=int(n.last_update),
                   block_at_registration=int(n.block_at_registration), incentive=float(n.incentive or 0.0),
                   consensus=float(n.consensus or 0.0), validator_trust=float(getattr(n, "validator_trust", 0) or 0.0))
            for n in graph.neurons
        )
        return Metagraph(netuid=self.netuid, block=int(graph.block), neurons=neurons)

    def commitments(self) -> list[Commitment]:
        """Registered hotkeys' readable commitments, newest first (sealed timelock payloads and
        deregistered hotkeys are left out)."""
        found = self._read("commitments", lambda c, s: c.subnets.commitments(self.netuid))
        return [Commitment(hotkey=c.hotkey, block=int(c.block), data=c.value)
                for c in found.values() if c.uid is not None and c.value is not None]

    def weight_holders(self) -> dict[str, float]:
        """The runtime's `Incentive` of the last epoch (the SDK metagraph's `incentive`, PerU16 / 65535)."""
        return self.metagraph().incentive_by_hotkey()

    def commit(self, data: str) -> int:
        if not isinstance(data, str):
            raise ChainError(f"commitment must be text, got {type(data).__name__}", code="invalid_commitment")
        raw = data.encode("utf-8")
        if len(raw) > MAX_COMMITMENT_BYTES:
            raise ChainError(f"commitment is {len(raw)} bytes, the limit is {MAX_COMMITMENT_BYTES}", code="too_long")
        signer = self._hotkey_signer()
        call = bt.calls.Commitments.set_commitment(
            netuid=self.netuid, info={"fields": [{f"Raw{len(raw)}": "0x" + raw.hex()}]}
        )
        try:
            result = self._run("commit", lambda c, s: c.submit_call(
                call, signer, signer="hotkey", wait_for_inclusion=True, wait_for_finalization=False), write=True)
        except ChainError:
            raise
        except Exception as e:
            raise translate("commit", e, submitted=isinstance(e, bt.ChainError)) from e
        if not result.success:
            raise ChainError(f"commit refused: {result.message}", code=code_of(result.error, submitted=True))
        return _included_block(result) or self.current_block()

    def set_weights(self, uids: Sequence[int], weights: Sequence[float], version_key: int) -> WeightsResult:
        try:
            signer = self._hotkey_signer()
        except ChainError as e:
            return WeightsResult(False, str(e), e.code)
        problem = weights_problem(uids, weights)
        if problem:
            return WeightsResult(False, problem, "invalid_weights")
        try:
            current = self.current_block()
            limit = self._cached_rate_limit()
        except ChainError as e:
            return WeightsResult(False, str(e), e.code, retry_after_s=e.retry_after_s)
        if self._last_set_block is not None and current - self._last_set_block < limit:
            wait = limit - (current - self._last_set_block)
            return WeightsResult(False, f"weights set at block {self._last_set_block}; rate limit {limit} blocks, "
                                        f"retry in {wait} block(s)", "rate_limited", current)
        intent = RuntimeRuleSetWeights(netuid=self.netuid, uids=[int(u) for u in uids],
                                       weights=[float(w) for w in weights], version_key=int(version_key))
        try:
            result = self._run("set weights", lambda c, s: c.execute(
                intent, signer, wait_for_inclusion=True, wait_for_finalization=False), write=True,
                retry_write=lambda: not getattr(intent, "built", False))
        except ChainError as e:
            return WeightsResult(False, str(e), e.code, current, retry_after_s=e.retry_after_s)
        except Exception as e:  # noqa: BLE001 - set_weights never raises
            built = getattr(intent, "built", False)
            if isinstance(e, bt.BittensorError) and not isinstance(e, bt.ChainError) and not built:
                # Refused before signing, e.g. all weights quantise to zero.
                return WeightsResult(False, str(e), "invalid_weights", current)
            error = translate("set weights", e, submitted=built)
            return WeightsResult(False, str(error), error.code, current, retry_after_s=error.retry_after_s)
        if not result.success:
            return WeightsResult(False, result.message, code_of(result.error, submitted=True),
                                 _included_block(result) or current)
        block = _included_block(result) or current
        self._last_set_block = block
        reveal_round = result.data.get("reveal_round")
        if reveal_round is not None:
            return WeightsResult(True, f"weights committed on {len(uids)} uid(s); revealed at drand round "
                                       f"{reveal_round}", "", block, reveal_round=int(reveal_round))
        return WeightsResult(True, f"weights set on {len(uids)} uid(s)", "", block)

    def weights_rate_limit(self) -> int:
        return self._cached_rate_limit(max_age_s=0)

    def _cached_rate_limit(self, max_age_s: float = RATE_LIMIT_TTL_S) -> int:
        now = time.monotonic()
        if self._rate_limit is None or now - self._rate_limit[1] >= max_age_s:
            value = self._read("weights rate limit",
                               lambda c, s: c.hyperparameters.weights_rate_limit(self.netuid))
            self._rate_limit = (int(value), now)
        return self._rate_limit[0]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._reset_connection()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=_CLOSE_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> BittensorChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BittensorChain(network={self.network!r}, netuid={self.netuid})"


def _included_block(result: Any) -> int | None:
    """The block an extrinsic landed in, from its 'block-index' id."""
    extrinsic_id = getattr(result, "extrinsic_id", None) or ""
    head = extrinsic_id.split("-", 1)[0]
    return int(head) if head.isdigit() else None
