"""The SDK's `SetWeights`, with the runtime's weight-count rule instead of the SDK's stricter one.

`bt.SetWeights` already does what a validator needs: it preflights registration and the rate
limit, clips to `MaxWeightsLimit`, quantises to u16, and submits either plaintext
`set_mechanism_weights` or, on a commit-reveal subnet, a timelocked
`commit_timelocked_mechanism_weights` (version 4) whose `reveal_round` comes back in the result.

A commit is checked for little at commit time: the validator permit (and stake) are checked only
when the chain reveals it, and a failed reveal is dropped silently. So a permit is checked here
first, as the chain would at reveal, to say `no_permit` instead of reporting a useless commit.

One rule differs from the runtime: the SDK refuses locally when fewer than `MinAllowedWeights`
u16 values are non-zero, while the chain wants `min(subnet_n, MinAllowedWeights)` entries, zeros
included. On a 4-uid subnet with the default 1024 the SDK could never succeed. This intent runs
the SDK's own steps, but with the runtime's count, and fills missing uids with the smallest
positive u16 (see `subnet.chain.weights`), so the chain does not drop the reveal for
`WeightVecLengthIsLow` (unless the subnet gains uids between the commit and its reveal: uids that
do not exist yet cannot be weighted).
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any

import bittensor as bt
from bittensor.intents import weights as sdk_weights

from subnet.chain.weights import fill_to_minimum, required_count


@dataclass
class RuntimeRuleSetWeights(bt.SetWeights):
    """`bt.SetWeights` whose weight count follows the runtime (`check_length`), filled when short.

    After `build`, `built` is True: a failure from then on may come after the submission."""

    async def build(self, substrate: Any, wallet: Any):
        preflight = await sdk_weights._preflight(substrate, self.hotkey_address(wallet), self.netuid, self.mechid)
        hotkey = self.hotkey_address(wallet)
        subnet_n, permits, owner = await asyncio.gather(
            substrate.query("SubtensorModule", "SubnetworkN", [self.netuid]),
            substrate.query("SubtensorModule", "ValidatorPermit", [self.netuid]),
            substrate.query("SubtensorModule", "SubnetOwnerHotkey", [self.netuid]),
        )
        subnet_n = int(subnet_n or 0)
        self_weight = [int(u) for u in self.uids] == [preflight.uid]
        permitted = isinstance(permits, (list, tuple)) and preflight.uid < len(permits) and bool(permits[preflight.uid])
        if not (self_weight or permitted or owner == hotkey):
            raise bt.ChainError(f"hotkey {hotkey} (uid {preflight.uid}) has no validator permit on netuid "
                                f"{self.netuid}", "NeuronNoValidatorPermit")
        required = required_count(subnet_n, preflight.min_allowed_weights)
        # The SDK's own conforming (clip, quantise, drop zeros) without its count check ...
        relaxed = dataclasses.replace(preflight, min_allowed_weights=0)
        uids, values = sdk_weights._conform(self.uids, self.weights, relaxed, self.netuid)
        # ... then the runtime's count, met with the smallest positive u16 (a single self-weight is exempt).
        if uids != [preflight.uid]:
            ranked = [u for _, u in sorted(zip(self.weights, self.uids), key=lambda p: -p[0])]
            uids, values = fill_to_minimum(uids, values, range(subnet_n), required, preferred=ranked)
        if preflight.commit_reveal:
            call = await sdk_weights._build_timelocked(
                substrate, self.hotkey_public_key(wallet), self.netuid, self.mechid, uids, values,
                self.version_key, sdk_weights.DEFAULT_COMMIT_REVEAL_VERSION,
            )
        else:
            call = await substrate.compose(bt.calls.SubtensorModule.set_mechanism_weights(
                netuid=self.netuid, mecid=self.mechid, dests=uids, weights=values, version_key=self.version_key))
        # Not a dataclass field, so never serialised. From here on a failure may follow the submission.
        self.built = True
        return call
