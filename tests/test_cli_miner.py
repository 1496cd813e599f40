"""What a miner meets first: upload preflight, the replace-commitment question, train's run directory.

An unregistered hotkey used to upload privately and then crash with a ChainError traceback, and a
second upload silently replaced the miner's commitment (resetting its age). Training appended to an
old run's metrics and saved nothing on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from subnet.chain.keys import create_wallet
from subnet.chain.local import LocalChain
from subnet.commands.miner_commands import app
from subnet.miner.run_dir import truncate_metrics
from subnet.preflight import PreflightError, check_hub_write
from tests.miner_run import trained_run


@pytest.fixture
def devnet(tmp_path):
    wallets = tmp_path / "wallets"
    miner = create_wallet(wallets, "miner")
    create_wallet(wallets, "stranger")
    with LocalChain(tmp_path / "chain.sqlite", netuid=1) as chain:
        chain.register(miner.hotkey.ss58_address, miner.coldkeypub.ss58_address)
    (tmp_path / "store").mkdir()
    return tmp_path, miner.hotkey.ss58_address


def upload_args(tmp_path, model_dir, wallet="miner", name="tiny-a", *extra):
    return ["upload", str(model_dir), "--namespace", "miner", "--name", name, "--incumbent", "none",
            "--network", f"devnet:{tmp_path / 'chain.sqlite'}", "--store", f"local:{tmp_path / 'store'}",
            "--wallet.path", str(tmp_path / "wallets"), "--wallet.name", wallet, "--device", "cpu", *extra]


def commitment(tmp_path, hotkey):
    with LocalChain(tmp_path / "chain.sqlite", netuid=1) as chain:
        return next((c.data for c in chain.commitments() if c.hotkey == hotkey), None)


def one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


@pytest.mark.parametrize("wallet, fragment", [("stranger", "is not registered on subnet 1"),
                                              ("nobody", "hotkey file")])
def test_upload_preflight_fails_in_one_line_before_uploading(devnet, wallet, fragment):
    tmp_path, _ = devnet
    model_dir = tmp_path / "model"
    model_dir.mkdir()  # never read: the preflight fails first
    run = CliRunner().invoke(app, upload_args(tmp_path, model_dir, wallet))
    assert run.exit_code == 1
    assert fragment in one_error_line(run.output)
    assert not any((tmp_path / "store").iterdir()), "nothing may be uploaded before the preflight passes"


def test_upload_asks_before_uploading_a_replacement_and_names_yes_without_a_terminal(devnet, monkeypatch):
    tmp_path, hotkey = devnet
    result, out = trained_run()
    first = CliRunner().invoke(app, upload_args(tmp_path, result.model_dir, "miner", "tiny-a"))
    assert first.exit_code == 0, first.output
    committed = commitment(tmp_path, hotkey)
    other = out / "checkpoints/step_00000005/model"

    dry = CliRunner().invoke(app, upload_args(tmp_path, other, "miner", "tiny-b", "--dry-run"))
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output and "replacing its commitment" in dry.output
    assert commitment(tmp_path, hotkey) == committed

    # No terminal to ask on: refused before anything is uploaded, with the way to say yes.
    unattended = CliRunner().invoke(app, upload_args(tmp_path, other, "miner", "tiny-b"))
    assert unattended.exit_code == 1 and "--yes" in unattended.output.splitlines()[-1]
    assert "nothing was uploaded" in unattended.output and "uploaded privately" not in unattended.output
    assert not (tmp_path / "store" / "miner" / "tiny-b").exists()
    assert commitment(tmp_path, hotkey) == committed

    # On a terminal the question comes before the upload, and a no uploads nothing.
    monkeypatch.setattr("subnet.commands.miner_commands._stdin_is_terminal", lambda: True)
    declined = CliRunner().invoke(app, upload_args(tmp_path, other, "miner", "tiny-b"), input="n\n")
    assert declined.exit_code == 1 and "kept the existing commitment; nothing was uploaded" in declined.output
    assert "replace the commitment" in declined.output and "uploaded privately" not in declined.output
    assert not (tmp_path / "store" / "miner" / "tiny-b").exists()
    assert commitment(tmp_path, hotkey) == committed

    # Re-running the first upload (same repo, same files) asks nothing: it is the same model.
    again = CliRunner().invoke(app, upload_args(tmp_path, result.model_dir, "miner", "tiny-a"))
    assert again.exit_code == 0 and "not committing again" in again.output, again.output

    limited = CliRunner().invoke(app, upload_args(tmp_path, other, "miner", "tiny-b", "--yes"))
    if limited.exit_code:  # committed in this same block: the chain's rate limit, reported in one line
        assert "rate" in limited.output.splitlines()[-1] and limited.output.splitlines()[-1].startswith("error: ")
        with LocalChain(tmp_path / "chain.sqlite", netuid=1) as chain:
            chain.advance(2)
    replaced = CliRunner().invoke(app, upload_args(tmp_path, other, "miner", "tiny-b", "--yes"))
    assert replaced.exit_code == 0, replaced.output
    assert commitment(tmp_path, hotkey) != committed and "tiny-b" in commitment(tmp_path, hotkey)


def test_netuid_is_required_off_devnet(tmp_path):
    run = subprocess.run([sys.executable, "-m", "subnet", "miner", "upload", str(tmp_path), "--namespace", "a",
                          "--name", "b", "--network", "test"], capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if k != "SUBNET_NETUID"})
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--netuid" in lines[0] and "required" in lines[0], run.stderr


# ----------------------------------------------------------------------------- Hub write access


class WhoAmI(BaseHTTPRequestHandler):
    """/api/whoami-v2 answering as the Hub does: 401 for an unknown token, else the account."""

    accounts = {
        "hf_write": {"name": "alice", "orgs": [{"name": "team"}], "auth": {"accessToken": {"role": "write"}}},
        "hf_read": {"name": "alice", "orgs": [], "auth": {"accessToken": {"role": "read"}}},
    }

    def do_GET(self):
        token = self.headers.get("authorization", "").removeprefix("Bearer ")
        account = self.accounts.get(token) if self.path == "/api/whoami-v2" else None
        body = json.dumps(account or {"error": "Invalid credentials in Authorization header"}).encode()
        self.send_response(200 if account else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), WhoAmI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def hub_store(endpoint, token):
    from subnet.hub.huggingface import HuggingFaceStore

    return HuggingFaceStore(endpoint=endpoint, token=token)


def test_hub_write_access_is_checked_with_whoami(hub):
    assert check_hub_write(hub_store(hub, "hf_write"), "alice") == "alice"
    assert check_hub_write(hub_store(hub, "hf_write"), "team") == "alice"
    with pytest.raises(PreflightError, match="read-only"):
        check_hub_write(hub_store(hub, "hf_read"), "alice")
    with pytest.raises(PreflightError, match="neither the token's user"):
        check_hub_write(hub_store(hub, "hf_write"), "bob")
    with pytest.raises(PreflightError, match="refused the token"):
        check_hub_write(hub_store(hub, "hf_wrong"), "alice")


# ----------------------------------------------------------------------------- train's run directory


TRAIN = ["--competition", "tiny", "--steps", "400", "--seq-len", "32", "--batch-size", "2", "--warmup-steps", "2", "--device", "cpu",
         "--log-every", "1", "--progress", "lines", "--set", "reference_documents=20", "--set", "docs_per_chunk=20"]


def test_train_refuses_another_runs_directory(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    run = CliRunner().invoke(app, ["train", "--out-dir", str(tmp_path), *TRAIN])
    assert run.exit_code == 1 and "--resume latest" in one_error_line(run.output)
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1}\n'


def test_sigint_checkpoints_and_resume_continues_without_duplicate_metrics(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "subnet", "miner", "train", "--out-dir", str(out), *TRAIN],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("step") and "/400" in line and int(line.split()[1].split("/")[0]) >= 3:
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(seen) + rest
    assert "continue with --resume latest" in rest
    saved = sorted((out / "checkpoints").iterdir())
    assert saved, "no checkpoint written on SIGINT"
    step = int(saved[-1].name.split("_")[-1])
    assert 3 <= step < 400
    metrics = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert metrics == list(range(1, len(metrics) + 1))


def test_resume_drops_metrics_logged_after_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (10, 20, 30, 40)))
    truncate_metrics(path, 20)
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [10, 20]


# ----------------------------------------------------------------------------- an unreachable chain


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "subnet", "miner", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_benchmark_against_an_unreachable_chain_is_one_error_line(tmp_path):
    """The README's `--incumbent chain --network finney --netuid 9`, with the chain unreachable."""
    run = run_cli("benchmark", str(tmp_path), "--incumbent", "chain", "--network", f"ws://127.0.0.1:{closed_port()}",
                  "--netuid", "9")
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert "Traceback" not in run.stderr and len(lines) <= 2, run.stderr  # at most the adapter's "reconnecting once"
    assert lines[-1].startswith("error: chain (connection): ") and run.stdout == ""


def test_train_from_a_broken_chain_is_one_error_line(tmp_path):
    (tmp_path / "chain.sqlite").write_text("not a database")
    run = run_cli("train", "--init", "chain", "--network", f"devnet:{tmp_path / 'chain.sqlite'}",
                  "--out-dir", str(tmp_path / "run"), *TRAIN)
    assert run.returncode == 1, run.stderr
    assert "not a database" in one_error_line(run.stderr) and run.stdout == ""


# ----------------------------------------------------------------------------- a fresh hotkey joins a devnet


def test_a_fresh_hotkey_registers_on_a_devnet_and_upload_says_how(devnet):
    tmp_path, _ = devnet
    network = f"devnet:{tmp_path / 'chain.sqlite'}"
    wallet_args = ["--wallet.path", str(tmp_path / "wallets"), "--wallet.name", "newcomer"]
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    unregistered = CliRunner().invoke(app, upload_args(tmp_path, model_dir, "stranger"))
    assert "subnet miner register --network devnet:" in one_error_line(unregistered.output)
    keyless = CliRunner().invoke(app, upload_args(tmp_path, model_dir, "newcomer"))
    assert "subnet miner register --network devnet:" in one_error_line(keyless.output) and "--create" in keyless.output

    missing = CliRunner().invoke(app, ["register", "--network", network, *wallet_args])
    assert missing.exit_code == 1 and "--create" in one_error_line(missing.output)
    joined = CliRunner().invoke(app, ["register", "--network", network, "--create", *wallet_args])
    assert joined.exit_code == 0, joined.output
    with LocalChain(tmp_path / "chain.sqlite", netuid=1) as chain:
        graph = chain.metagraph()
    hotkey = joined.output.split()[1]
    assert graph.uid_of(hotkey) is not None and f"is uid {graph.uid_of(hotkey)} on subnet 1" in joined.output
    again = CliRunner().invoke(app, ["register", "--network", network, *wallet_args])
    assert again.exit_code == 0 and f"is uid {graph.uid_of(hotkey)}" in again.output  # idempotent

    real = run_cli("register", "--network", "finney", "--netuid", "9")
    assert real.returncode == 2 and "btcli subnets register --netuid 9" in real.stderr


def test_train_json_keeps_stdout_for_the_json_and_the_run_describes_itself(tmp_path):
    from subnet import __version__, git_commit

    out = tmp_path / "run"
    args = [a if a != "400" else "4" for a in TRAIN]
    run = run_cli("train", "--json", "--out-dir", str(out), *args)
    assert run.returncode == 0, run.stderr
    [line] = run.stdout.splitlines()  # progress went to stderr
    summary = json.loads(line)
    assert summary["steps"] == 4 and "step      4/4" in run.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["steps"] == 4 and record["config"]["seq_len"] == 32 and record["competition"] == "tiny"
    assert record["started"]["version"] == __version__ and record["started"]["commit"] == git_commit()
    assert "--out-dir" in record["started"]["command"] and summary["run"] == str(out / "run.json")


def test_a_resume_adds_to_the_run_record_instead_of_rewriting_how_the_run_began(tmp_path):
    from subnet.miner.config import TrainConfig
    from subnet.miner.run_dir import write_run_record

    write_run_record(tmp_path, TrainConfig(competition="tiny", steps=10), "tiny", 1, "cpu")
    write_run_record(tmp_path, TrainConfig(competition="tiny", steps=20, resume="latest"), "tiny", 2, "cpu",
                     resumed_at=10)
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["config"]["steps"] == 10 and record["started"]["world_size"] == 1
    [resume] = record["resumes"]
    assert resume["step"] == 10 and resume["config"]["steps"] == 20 and resume["world_size"] == 2
