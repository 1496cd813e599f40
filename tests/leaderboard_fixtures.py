"""A validator state with a realistic leaderboard, hostile text included, and a headless-Chromium reader."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from subnet.eval.types import DocLosses
from subnet.hub.model_ref import ModelRef
from subnet.validator import state as st
from subnet.validator.operator_status import record_identity
from subnet.validator.state import ResultRow, ValidatorState
from subnet.validator.state.evidence import EvidenceRecord

HOSTILE_COMMITMENT = '<img src=x onerror="document.body.id=\'pwned\'"><script>document.title="pwned"</script>'
HOSTILE_REASON = '<b id="bold-reason">bold</b><script>document.title="pwned"</script>'


def model_ref(name: str, commit: str = "abcdef1234") -> str:
    h = base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()
    return ModelRef("miner", name, commit, h, "tiny").encode()


def losses(mean: float, tokens: np.ndarray, difficulty: np.ndarray, rng: np.random.Generator) -> DocLosses:
    """Per-document losses that share the documents' difficulty, as two models on the same text do."""
    per_token = mean * difficulty * rng.lognormal(0, 0.01, len(tokens))
    return DocLosses(per_token * tokens, tokens.astype(np.int64), (tokens * 4).astype(np.int64),
                     np.zeros(len(tokens), dtype=np.int8))


def populate(state: ValidatorState, n_models: int, n_rounds: int, n_docs: int = 64, seed: int = 0,
             blobs_last_rounds: int = 3) -> dict:
    """`n_models` miners over `n_rounds` rounds; the first improves and holds the weight, the last copies it.

    Per-document losses are kept for the newest `blobs_last_rounds` rounds only, as retention would.
    """
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n_models):
        rec = state.upsert_commitment(f"hk-{i:03d}", i + 1, model_ref(f"model-{i}"), 100 + i, "tiny")
        state.mark_verified(rec.id, f"/m/{i}", "H-copy" if i in (0, n_models - 1) else f"H{i}")
        records.append(rec)
    junk = state.upsert_commitment("hk-junk", n_models + 1, HOSTILE_COMMITMENT, 90, None,
                                   parse_error="commitment has 1 field(s)")
    bad = state.upsert_commitment("hk-bad", n_models + 2, model_ref("bad"), 95, "tiny")
    state.mark_failed(bad.id, HOSTILE_REASON, "a reason is any stored text; it must render as text")
    base = rng.uniform(2.2, 3.0, n_models)
    base[0] = 2.1
    for r in range(n_rounds):
        rid = state.start_round(1000 + 150 * r, f"0xseed{r:04d}")
        state.record_round_data(rid, "tiny", f"0xseed{r:04d}", ["p1"], "d", n_docs)
        doc_rng = np.random.default_rng(seed * 100_000 + r)
        results = []
        keep = r >= n_rounds - blobs_last_rounds
        leader_losses = None
        tokens, difficulty = doc_rng.integers(20, 200, n_docs), doc_rng.lognormal(0, 0.15, n_docs)
        for i, rec in enumerate(records):
            copy_of = records[0].hotkey if i == n_models - 1 and i > 0 else None
            mean = float(base[0 if copy_of else i] * (1 - 0.02 * r / max(1, n_rounds)))
            dl = leader_losses if copy_of else losses(mean, tokens, difficulty, doc_rng)
            leader_losses = dl if i == 0 else leader_losses
            results.append(ResultRow("tiny", rec.hotkey, rec.uid, rec.id, mean, mean - 0.01, mean + 0.01, n_docs,
                                     1000.0, win_rate=1.0 if i == 0 else 0.0, copy_of=copy_of,
                                     losses=dl.to_bytes() if keep else None))
        weights = {"tiny": {records[0].hotkey: 1.0}}
        last = r == n_rounds - 1
        state.complete_scoring(rid, results, [], weights, [rec.id for rec in records],
                               evidence=_evidence(records) if last else (), decided=["tiny"] if last else ())
        if r % 2 == 1:  # weights every other round, as a weights interval of 2 rounds would
            attempt = state.record_weights_intent(rid, 1000 + 150 * r, [1], [1.0])
            state.record_weights_outcome(attempt, True, "ok", 1000 + 150 * r + 2)
        state.finish_round(rid, st.ROUND_DONE)
    record_identity(state, IDENTITY)
    return {"records": records, "junk": junk, "bad": bad}


IDENTITY = {"hotkey": "5FvalidatorHotkeyOfTheFixture0000000000000000000", "uid": 7, "netuid": 2, "network": "local",
            "version": "9.9.9", "commit": "0123abcd", "round_interval_s": 600.0, "weights_interval_blocks": 300}


def _evidence(records) -> list[EvidenceRecord]:
    """Pooled evidence of the holder against each later model: each row names two hotkeys' models."""
    first = records[0]
    return [EvidenceRecord("tiny", first.id, rec.id, first.hotkey, rec.hotkey, 0.02 * i, 1.0, 4, 0.003,
                           0.01 * i, 0.03 * i, False, None) for i, rec in enumerate(records[1:], start=1)]


def find_chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def chromium_args(chromium: str, profile: Path, window: str = "1400,1600") -> list[str]:
    return [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
            f"--user-data-dir={profile}", f"--window-size={window}", "--virtual-time-budget=15000"]


def render_dom(chromium: str, url: str, profile: Path, timeout_s: float = 90.0) -> str:
    """The page's DOM after its scripts ran and its fetches settled."""
    out = subprocess.run(chromium_args(chromium, profile) + ["--dump-dom", url], capture_output=True, text=True,
                         timeout=timeout_s, check=True)
    return out.stdout


def screenshot(chromium: str, url: str, profile: Path, png: Path, timeout_s: float = 90.0,
               window: str = "1400,1600") -> Path:
    subprocess.run(chromium_args(chromium, profile, window) + [f"--screenshot={png}", url], capture_output=True,
                   timeout=timeout_s, check=True)
    return png
