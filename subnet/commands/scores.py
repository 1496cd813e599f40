"""`subnet scores`: the validator's scores, from its state directory or its status API.

Both paths produce the same rows (`subnet.validator.score_table.scores_table`), so what a person reads in
the terminal is what `/scores` serves.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from subnet.commands.boundary import CommandError, UsageProblem

BLOCKS_PER_DAY = 7200


def wide_console(stderr: bool = False) -> Console:
    """A console that keeps tables readable when output is piped (rich assumes 80 columns there)."""
    return Console(stderr=stderr, width=shutil.get_terminal_size((160, 24)).columns)


class ScoresUnavailable(RuntimeError):
    """The scores could not be read; the message says from where and why."""


def rows_from_state(state_dir: Path, competition: str | None = None, deregistered: bool = False) -> list[dict]:
    from subnet.validator.score_table import scores_table

    with open_state(state_dir) as state:
        return scores_table(state, competition, include_deregistered=deregistered)


def serve_state(state_dir: Path, host: str, port: int, console: Console) -> None:
    """The validator's status API (leaderboard page included) over a state directory, until interrupted."""
    import threading

    from subnet.signals import stop_requested_on_signals
    from subnet.validator.api import StatusServer, build_app
    from subnet.validator.metrics import ValidatorMetrics

    with open_state(state_dir) as state:
        server = StatusServer(build_app(state, ValidatorMetrics(), healthz_max_age_s=float("inf")), host, port)
        try:
            bound = server.start()
        except RuntimeError as e:
            raise ScoresUnavailable(str(e)) from None
        console.print(f"serving the leaderboard of {state.path} on http://{host}:{bound}/ (Ctrl-C stops)")
        try:
            with stop_requested_on_signals(threading.Event(), announce=lambda _: None) as stop:
                while not stop.wait(0.5):
                    pass
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()


def _state_db(state_dir: Path) -> Path:
    db = Path(state_dir).expanduser()
    db = db if db.suffix == ".sqlite" else db / "state.sqlite"
    if not db.is_file():
        raise ScoresUnavailable(f"no validator state at {db} (is --state the validator's --state-dir?)")
    return db


@contextlib.contextmanager
def open_state(state_dir: Path):
    """The validator's state, read-only: reading scores never writes the file or waits on the daemon.

    A state written by an older version is migrated once first, as the validator itself would.
    """
    from subnet.validator.state import SCHEMA_VERSION, ValidatorState

    db = _state_db(state_dir)
    try:
        state = ValidatorState(db, read_only=True)
        if state.schema_version < SCHEMA_VERSION:
            state.close()
            ValidatorState(db).close()
            state = ValidatorState(db, read_only=True)
        elif state.schema_version > SCHEMA_VERSION:
            version = state.schema_version
            state.close()
            raise ScoresUnavailable(f"validator state {db} has schema version {version}, newer than this "
                                    f"version's {SCHEMA_VERSION}: upgrade subnet")
    except ScoresUnavailable:
        raise
    except Exception as e:  # a corrupt or foreign file: say so instead of a traceback
        raise ScoresUnavailable(f"cannot read validator state {db}: {e}") from None
    try:
        yield state
    finally:
        state.close()


def evidence_from_state(state_dir: Path, competition: str | None = None) -> list[dict]:
    """Each current pair's evidence accumulated across rounds (`subnet.validator.score_table.evidence_table`)."""
    from subnet.validator.score_table import evidence_table

    with open_state(state_dir) as state:
        return evidence_table(state, competition)


def evidence_from_api(url: str, competition: str | None = None, timeout_s: float = 10.0) -> list[dict]:
    import urllib.parse
    import urllib.request

    query = "?" + urllib.parse.urlencode({"competition": competition}) if competition else ""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/evidence" + query, timeout=timeout_s) as response:
            payload = json.loads(response.read())
    except (OSError, ValueError):  # an older validator without /evidence: show the scores alone
        return []
    rows = payload.get("evidence", []) if isinstance(payload, dict) else []
    return rows if isinstance(rows, list) else []


def render_evidence(pairs: list[dict], console: Console) -> None:
    """The accumulated paired intervals: L_later / L_earlier - 1, which decides once below -advantage.

    Each side is named by uid, model and hotkey prefix: a replaced model starts new pairs, and the row
    says which model it is about.
    """
    t = Table(title="pairs: evidence accumulated across rounds (later vs earlier loss, 95% confidence sequence)")
    for col, justify in (("comp", "left"), ("earlier", "left"), ("later", "left"), ("rounds", "right"),
                         ("later/earlier - 1", "right"), ("interval", "right"), ("advantage", "right"),
                         ("verdict", "left")):
        t.add_column(col, justify=justify)
    for p in pairs:
        interval = f"{_fmt(p.get('acc_low'), '+.4%')}..{_fmt(p.get('acc_high'), '+.4%')}"
        t.add_row(Text(str(p.get("competition") or "")), _side(p, "earlier"), _side(p, "later"),
                  _fmt(p.get("rounds"), "d"), _fmt(p.get("diff"), "+.4%"), interval, _fmt(p.get("eps"), ".4%"),
                  "later wins" if p.get("later_wins") else "earlier keeps")
    console.print(t)


def _side(pair: dict, side: str) -> Text:
    """ "uid 3 miner/model@abcdef12 (5F3sa2TJ)"; an older API without uid and model gives the hotkey alone."""
    uid, model, hotkey = pair.get(f"{side}_uid"), pair.get(f"{side}_model"), str(pair.get(side) or "")[:8]
    if uid is None and not model:
        return Text(hotkey)
    return Text(f"uid {_fmt(uid, 'd')} {model or ''} ({hotkey})")


def rows_from_api(url: str, competition: str | None = None, deregistered: bool = False,
                  timeout_s: float = 10.0) -> list[dict]:
    import urllib.error
    import urllib.parse
    import urllib.request

    params = {"competition": competition} if competition else {}
    if deregistered:
        params["deregistered"] = "1"
    query = "?" + urllib.parse.urlencode(params) if params else ""
    target = url.rstrip("/") + "/scores" + query
    try:
        with urllib.request.urlopen(target, timeout=timeout_s) as response:
            payload = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ScoresUnavailable(f"cannot read scores from {target}: {e}") from None
    rows = payload.get("scores", payload) if isinstance(payload, dict) else payload
    if not isinstance(rows, list):
        raise ScoresUnavailable(f"{target} did not answer with a list of scores")
    return [r for r in rows if competition is None or r.get("competition") == competition]


def weights_from_state(state_dir: Path) -> dict | None:
    """The validator's last weights: "committed, reveals at round R" on a commit-reveal subnet."""
    from subnet.validator.score_table import weights_summary

    try:
        with open_state(state_dir) as state:
            return weights_summary(state)
    except ScoresUnavailable:  # rows_from_state already said what is wrong with the file
        return None


def weights_from_api(url: str, timeout_s: float = 10.0) -> dict | None:
    import urllib.request

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/scores", timeout=timeout_s) as response:
            payload = json.loads(response.read())
    except (OSError, ValueError):
        return None
    weights = payload.get("weights") if isinstance(payload, dict) else None
    return weights if isinstance(weights, dict) else None


def _fmt(x, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def render(rows: list[dict], console: Console, title: str = "scores") -> None:
    t = Table(title=title)
    for col, justify in (("uid", "right"), ("hotkey", "left"), ("model", "left"), ("comp", "left"),
                         ("age", "right"), ("adv", "right"), ("loss (95% CI)", "right"), ("round", "right"),
                         ("win", "right"), ("weight", "right"), ("status", "left")):
        t.add_column(col, justify=justify)
    for r in rows:
        age = r.get("age_blocks")
        age_text = "-" if age is None else f"{age} ({age / BLOCKS_PER_DAY:.1f}d)"
        loss = "-"
        if r.get("mean_loss") is not None:
            loss = f"{r['mean_loss']:.4f} ({_fmt(r.get('ci_low'), '.4f')}..{_fmt(r.get('ci_high'), '.4f')})"
        status = r.get("status") or ""
        if r.get("reason"):  # a copy's reason says it all: "copy of uid 3 (5F3sa2TJ)"
            status = r["reason"] if status == "copy" else f"{status}: {r['reason']}"
        t.add_row(  # miner-supplied text as plain Text: never read as rich markup
            _fmt(r.get("uid"), "d"), Text(str(r.get("hotkey") or "")[:8]), Text(str(r.get("model") or "")),
            Text(str(r.get("competition") or "")), age_text,
            _fmt(r.get("advantage"), ".4%") + (" earned" if _earned(r) else ""), loss, _fmt(r.get("round"), "d"),
            _fmt(r.get("win_rate"), ".2f"), _fmt(r.get("weight"), ".4f"), Text(str(status)),
        )
    console.print(t)


def _earned(row: dict) -> bool:
    source = row.get("advantage_source") or ""
    return source.startswith("earned") and "not used" not in source


def plot_history(state_dir: Path, out: Path, competition: str | None = None) -> Path:
    """Each model's loss over rounds and its paired difference from the leader (subnet.commands.scores_plot)."""
    from subnet.commands.scores_plot import NothingToPlot, collect, draw

    with open_state(state_dir) as state:
        try:
            plots = collect(state, competition)
        except NothingToPlot as e:
            raise ScoresUnavailable(str(e)) from None
    return draw(plots, out)


def register(app: typer.Typer) -> None:
    @app.command("scores")
    def scores(
        state: Path = typer.Option(None, "--state", help="The validator's --state-dir."),
        url: str = typer.Option(None, "--url", help="The validator's status API, e.g. http://127.0.0.1:8091."),
        competition: str = typer.Option(None, "--competition", "-c", help="Only this competition."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object on the last line."),
        plot: Path = typer.Option(None, "--plot", help="Draw each model's loss over rounds, and its paired "
                                                       "difference from the leader, to this PNG."),
        deregistered: bool = typer.Option(False, "--deregistered", help="Also list hotkeys that left the subnet."),
        serve: bool = typer.Option(False, "--serve", help="Serve the leaderboard page and JSON API over --state "
                                   "until Ctrl-C (read-only)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address --serve binds (keep 127.0.0.1 behind a proxy)."),
        port: int = typer.Option(8092, "--port", help="Port --serve binds (0 picks a free one)."),
    ) -> None:
        """Show a validator's scores: one row per model, sorted by weight."""
        console = wide_console(stderr=as_json)
        if serve:
            if state is None:
                raise UsageProblem("--serve needs --state (it serves the validator's state directory)")
            try:
                serve_state(state, host, port, console)
            except ScoresUnavailable as e:
                raise CommandError(str(e)) from None
            return
        if (state is None) == (url is None):
            raise UsageProblem("give exactly one of --state DIR or --url URL")
        if plot is not None and state is None:  # refuse before contacting anything
            raise UsageProblem("--plot needs --state (the round history lives in the state)")
        try:
            rows = (rows_from_state(state, competition, deregistered) if state is not None
                    else rows_from_api(url, competition, deregistered))
            evidence = (evidence_from_state(state, competition) if state is not None
                        else evidence_from_api(url, competition))
            if plot is not None:
                plot_history(state, plot, competition)
                console.print(f"wrote {plot}")
        except ScoresUnavailable as e:
            raise CommandError(str(e)) from None
        if not rows:
            console.print("no models to show yet" + (f" for competition {competition!r}" if competition else ""))
        else:
            render(rows, console, title=f"scores ({state or url})")
        weights = weights_from_state(state) if state is not None else weights_from_api(url)
        if weights:
            console.print(f"weights: {weights.get('text')}")
        if evidence:
            render_evidence(evidence, console)
        if as_json:
            print(json.dumps({"scores": rows, "weights": weights, "evidence": evidence}))
