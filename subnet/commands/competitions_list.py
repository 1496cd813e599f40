"""`subnet competitions`: the schedule, the entry in force at the chain's block, and the next change.

Miners and operators read here when a competition opens or retires; the date is approximate
(12 s a block). The chain is read only for its block: when it cannot be reached, the schedule is
still printed and the current block is said to be unknown.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from subnet.commands.boundary import load_option_file
from subnet.schedule import CompetitionSchedule, approximate_seconds, default_schedule, load_schedule


def current_block(network: str, netuid: int) -> int | None:
    """The chain's block, or None when it cannot be read (no error: the schedule is still worth printing)."""
    if network.startswith("devnet:") and not Path(network[len("devnet:"):]).is_file():
        return None  # never create an empty devnet chain just to read its block
    try:
        from subnet.chain.factory import make_chain

        chain = make_chain(network, netuid)
        try:
            return int(chain.current_block())
        finally:
            close = getattr(chain, "close", None)
            if close:
                close()
    except Exception:  # noqa: BLE001 - unreachable, missing file, no bittensor: the block is unknown
        return None


def describe(schedule: CompetitionSchedule, block: int | None, now: float | None = None) -> dict[str, Any]:
    """The schedule as plain data, with the entry in force and the next change when the block is known."""
    now = time.time() if now is None else now
    entries = [{
        "start_block": e.start_block, "note": e.note, "owner": e.owner, "owner_share": e.owner_share,
        "competitions": {cid: c.reward_share for cid, c in e.competitions.items()},
    } for e in schedule.entries]
    out: dict[str, Any] = {"block": block, "entries": entries, "in_force": None, "next_change": None}
    if block is None:
        return out
    out["in_force"] = schedule.entries.index(schedule.in_force(block))
    nxt = schedule.next_change(block)
    if nxt is not None:
        eta = now + approximate_seconds(block, nxt.start_block)
        out["next_change"] = {"entry": schedule.entries.index(nxt), "start_block": nxt.start_block,
                              "blocks_left": nxt.start_block - block,
                              "approx_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(eta))}
    return out


def render(info: dict[str, Any]) -> str:
    lines = [f"current block: {info['block'] if info['block'] is not None else 'unknown (chain not reachable)'}"]
    for i, e in enumerate(info["entries"]):
        mark = "*" if info["in_force"] == i else " "
        shares = ", ".join(f"{cid} {share:.2f}" for cid, share in e["competitions"].items())
        owner = f"; owner {e['owner']} {e['owner_share']:.2f}" if e["owner_share"] > 0 else ""
        lines.append(f"{mark} entry {i} from block {e['start_block']}: {shares}{owner}"
                     + (f"  ({e['note']})" if e["note"] else ""))
    nxt = info["next_change"]
    if nxt is not None:
        lines.append(f"next change: entry {nxt['entry']} at block {nxt['start_block']} "
                     f"(in {nxt['blocks_left']} blocks, about {nxt['approx_utc']})")
    elif info["block"] is not None:
        lines.append("next change: none scheduled")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("competitions")
    def competitions(
        network: str = typer.Option("finney", "--network", envvar="SUBNET_NETWORK",
                                    help="finney | test | local | ws(s)://URL | devnet:PATH (for the current block)."),
        netuid: int = typer.Option(1, "--netuid", envvar="SUBNET_NETUID", help="The subnet (only for the block)."),
        schedule_file: Path = typer.Option(None, "--schedule", "--schedule-file", envvar="SUBNET_SCHEDULE_FILE",
                                           help="TOML/JSON schedule (default: the package's)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """Show the competition schedule, the entry in force now and the next change."""
        schedule = (load_option_file("--schedule", schedule_file, load_schedule, "schedule") if schedule_file
                    else default_schedule())
        info = describe(schedule, current_block(network, netuid))
        typer.echo(json.dumps(info) if as_json else render(info))
