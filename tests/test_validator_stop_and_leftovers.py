"""A second signal stops at once, nothing the daemon started outlives it, and a restart removes what a
killed run left (issue 30, items 4 and 5). A real daemon process with real scoring workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from subnet.pids import alive
from tests.test_validator_e2e import _config, _deps, _populate, subnet, trained  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]

RUNNER = textwrap.dedent("""
    import logging, sys
    from pathlib import Path
    logging.basicConfig(level=logging.INFO, format="%(created).3f %(name)s %(message)s")
    from subnet.eval.worker import ScoreJob, score_models
    from subnet.validator.daemon import run_validator
    from subnet.validator.daemon_signals import exit_at_once_if_forced
    from tests.test_validator_e2e import _config, _deps
    from tests.validator_fixtures import LocalSubnet

    root = Path(sys.argv[1])
    subnet = LocalSubnet(root / "subnet", block_time=0.2)
    config = _config(root, subnet, max_rounds=None, timeout_per_model_s=120.0, api_port=0)
    deps = _deps(config, subnet)

    def workers(jobs, competition, docs):  # real worker processes whose loading takes a minute
        return score_models([ScoreJob(j.key, j.model_dir) for j in jobs], competition, docs, timeout_s=120,
                            loader="tests.slow_loader:load_model", max_memory_bytes=0)

    deps.scorer = workers
    sys.exit(exit_at_once_if_forced(run_validator(config, deps=deps)))  # as `subnet validator run` does
""")


def _descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                children = Path(f"/proc/{p}/task/{t}/children").read_text().split()
            except OSError:
                continue
            for c in map(int, children):
                if c not in out:
                    out.add(c)
                    todo.append(c)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_a_second_signal_stops_within_3_s_with_no_traceback_and_no_child_left(tmp_path, subnet, trained):
    _populate(subnet, trained, hostile=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SLOW_LOADER_S": "60",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(tmp_path)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        workers: set[int] = set()
        while not workers:  # a scoring worker is loading its model
            assert proc.poll() is None and time.monotonic() < deadline, "no scoring worker started"
            time.sleep(0.2)
            workers = {c for c in _descendants(proc.pid) if "spawn_main" in _cmdline(c)}
        time.sleep(1.0)
        children = _descendants(proc.pid)
        assert any("resource_tracker" in _cmdline(c) for c in children), [_cmdline(c) for c in children]
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        _, stderr = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = stderr.decode(errors="replace")
    assert took < 3.0, (took, f"second signal at {time.time() - (time.monotonic() - sent):.3f}", text[-3000:])
    assert proc.returncode == 130, text[-2000:]
    assert "Traceback" not in text and "result-1.json" not in text, text[-3000:]
    time.sleep(0.3)
    left = [(c, _cmdline(c)) for c in children if alive(c)]
    assert not left, left


def test_a_restart_removes_partial_downloads_of_dead_processes_and_keeps_live_ones(tmp_path, subnet):
    from subnet.validator.daemon import Daemon

    deps = _deps(_config(tmp_path, subnet), subnet)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        hotkey_dir = deps.config.models_dir / "5FakeHotkey"
        killed = hotkey_dir / f".partial-{'ab' * 20}-{dead_pid}-0123abcd"  # a download killed with its process
        running = hotkey_dir / f".partial-{'cd' * 20}-{sleeper.pid}-4567ef01"  # another process's download
        for d in (killed, running):
            d.mkdir(parents=True)
            (d / "model.safetensors").write_bytes(b"\0" * 1024)
        assert not alive(dead_pid)
        Daemon(deps, on_round=lambda s: None).recover()  # what every start does first
        assert not killed.exists() and running.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    deps.state.close()
