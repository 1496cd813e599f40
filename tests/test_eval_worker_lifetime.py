"""Scoring workers never outlive the daemon, end on their own time limit, and leave no temp dirs behind."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from subnet.competitions import DEFAULT_COMPETITIONS
from subnet.eval.docfile import save_documents
from subnet.eval.worker import TEMP_PREFIX, default_memory_cap, remove_stale_temp_dirs
from subnet.eval.worker_process import worker_main
from tests.eval_loaders import random_docs

REPO = Path(__file__).resolve().parents[1]


def _running(pid: int) -> bool:
    """Alive and not a zombie (a reparented zombie still answers kill(pid, 0))."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG are Linux's")
def test_kill_9_of_the_daemon_leaves_no_worker_alive_2_s_later(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    script = textwrap.dedent(f"""
        from subnet.eval.worker import ScoreJob, score_models
        from tests.eval_loaders import random_docs
        score_models([ScoreJob("hangs", {str(model_dir)!r})], "tiny", random_docs([5, 7]), timeout_s=3600,
                     loader="tests.eval_loaders:load_hanging_with_pid")
    """)
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    daemon = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env)
    pid_file = model_dir / "worker.pid"
    try:
        assert _wait_for(pid_file.exists, 120), "the worker never started scoring"
        worker = int(pid_file.read_text())
        assert _running(worker)
        leftovers = list(tmp_path.glob(f"{TEMP_PREFIX}p{daemon.pid}-*"))
        assert leftovers, "the documents' temp dir names its owner"
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(10)
        killed_at = time.monotonic()
        assert _wait_for(lambda: not _running(worker), 2.0), "the worker outlived the daemon"
        assert time.monotonic() - killed_at <= 2.0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    # The kill left the temp dir; the next start-up removes it (its owner is gone) and nothing else.
    live = tmp_path / f"{TEMP_PREFIX}p{os.getpid()}-mine"
    live.mkdir()
    old_style, fresh_old_style = tmp_path / f"{TEMP_PREFIX}k2j4xq", tmp_path / f"{TEMP_PREFIX}in_use"
    old_style.mkdir()
    fresh_old_style.mkdir()
    os.utime(old_style, (time.time() - 3600, time.time() - 3600))
    removed = remove_stale_temp_dirs(tmp_path)
    assert set(removed) == set(leftovers) | {old_style}
    assert live.is_dir() and fresh_old_style.is_dir() and not any(p.exists() for p in leftovers)


def test_a_worker_enforces_its_own_time_limit(tmp_path):
    """Even when its parent does not (stuck, or gone without the kernel's signal), a hung worker ends."""
    docs_path = save_documents(random_docs([4, 6]), tmp_path / "docs.npz")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    request = dict(key="hangs", model_dir=str(model_dir), competition=DEFAULT_COMPETITIONS["tiny"],
                   docs_path=str(docs_path), result_path=str(tmp_path / "result.json"), device="cpu",
                   loader="tests.eval_loaders:load_hanging_with_pid", max_memory_bytes=None, token_budget=None,
                   parent_pid=os.getpid(), time_limit_s=3.0)
    process = mp.get_context("spawn").Process(target=worker_main, args=(request,), daemon=True)
    started = time.monotonic()
    process.start()
    process.join(60)
    assert not process.is_alive()
    assert process.exitcode == -signal.SIGKILL  # its own deadline, not a crash or a result
    assert 3.0 <= time.monotonic() - started < 30


def test_cpu_workers_are_capped_by_default_within_the_machine():
    tiny, b3 = DEFAULT_COMPETITIONS["tiny"], DEFAULT_COMPETITIONS["b3"]
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 4 * 1024**3 < default_memory_cap(tiny) <= ram
    assert default_memory_cap(tiny) <= default_memory_cap(b3) <= ram
