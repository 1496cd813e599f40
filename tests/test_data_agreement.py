"""Two validator processes, started at different times with a FineWeb dump published in between,
sample identical documents in every round, or both record why not (another dataset revision)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fakes.datasets_server import running_server

CONFIGS = {"CC-MAIN-2013-20": 3_000, "CC-MAIN-2019-35": 5_000, "CC-MAIN-2024-10": 9_000}
SEEDS = ["0x" + f"{i:02x}" * 32 for i in range(1, 5)]
VALIDATOR = """
import json, sys
from subnet.data.fineweb import FineWebSource
source = FineWebSource(endpoint=sys.argv[1], page_size=20, timeout_s=5, retries=2, backoff_s=0.05)
for line in sys.stdin:
    d = source.fetch_round(line.strip(), 6, 20, 1000)
    print(json.dumps({"digest": d.digest, "revision": d.revision, "configs": d.configs,
                      "identity": d.identity()["identity_digest"], "complete": d.complete}), flush=True)
"""


class ValidatorProcess:
    """A separate interpreter with its own source and caches, asked for one round per line."""

    def __init__(self, url: str):
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        self.proc = subprocess.Popen([sys.executable, "-c", VALIDATOR, url], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)

    def round(self, seed: str) -> dict:
        self.proc.stdin.write(seed + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def test_validators_started_before_and_after_a_new_dump_agree_on_every_later_round():
    with running_server(configs=dict(CONFIGS), latency_s=0.002) as server:
        early = ValidatorProcess(server.url)
        try:
            first = early.round(SEEDS[0])  # the early validator's first round, before the dump appears
            server.add_dump("CC-MAIN-2025-05", 20_000)
            late = ValidatorProcess(server.url)
            try:
                replay = late.round(SEEDS[0])  # the late one saw another dataset: it says so
                rounds = [(early.round(seed), late.round(seed)) for seed in SEEDS[1:]]
            finally:
                late.close()
        finally:
            early.close()
    assert first["complete"] and replay["complete"]
    assert first["digest"] != replay["digest"] and first["revision"] != replay["revision"]
    assert first["identity"] != replay["identity"] and ["CC-MAIN-2025-05", 20_000] in replay["configs"]
    for a, b in rounds:
        assert a == b and a["complete"] and a["revision"] == server.revision
