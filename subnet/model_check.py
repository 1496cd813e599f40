"""`subnet model check PATH --competition ID`: would a validator accept this model, and how does it score?

Runs exactly the validator's safe loading and constraint checks, then scores the model on a small
sample of the competition's data with the validator's engine. Exit code 1 when it would be rejected.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Check a model as a validator would.", no_args_is_help=True)


@app.command("check")
def check(
    path: Path = typer.Argument(..., exists=True, file_okay=False, help="A local model directory."),
    competition: str = typer.Option("tiny", "--competition", "-c", help="Competition id."),
    competitions_file: Path = typer.Option(None, "--competitions-file", help="TOML/JSON competitions."),
    documents: int = typer.Option(64, "--documents", help="How many sample documents to score (0: skip scoring)."),
    device: str = typer.Option("cpu", "--device"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on the last line."),
) -> None:
    """Run the validator's loading checks on PATH and score it on a small sample."""
    from subnet.competitions import CompetitionError, get_competition, load_competitions
    from subnet.hub.errors import ModelRejected
    from subnet.hub.loading import check_model_dir, load_model

    console = Console(stderr=as_json)
    try:
        table = load_competitions(competitions_file) if competitions_file else None
        comp = get_competition(competition, table)
    except CompetitionError as e:  # a usage error: say which competition, not a traceback
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2)
    result: dict = {"path": str(path), "competition": comp.id}
    try:
        info = check_model_dir(path, comp)
        result.update(accepted=True, architecture=info.architecture, n_params=info.n_params)
        if documents > 0:
            model = load_model(path, comp, device=device)
            result.update(_score_sample(model, comp, documents, device))
    except ModelRejected as e:
        result.update(accepted=False, reason=e.reason, detail=e.detail)
    _print(console, result)
    if as_json:
        print(json.dumps(result))
    raise typer.Exit(0 if result["accepted"] else 1)


def _score_sample(model, comp, n_documents: int, device: str) -> dict:
    from subnet.data.sampling import tokenize_documents
    from subnet.data.sources import make_source
    from subnet.data.tokenizer import load_tokenizer
    from subnet.eval.engine import compute_losses
    from subnet.eval.types import STATUS_FAILED
    from subnet.scoring.stats import mean_interval

    source = make_source(comp)
    pages = max(1, -(-n_documents // comp.sampling.page_size))
    data = source.fetch_round("0x" + "00" * 32, pages, comp.sampling.page_size, n_documents)
    docs = tokenize_documents(data.documents, load_tokenizer(comp.tokenizer), comp.max_seq_len, data.digest)
    losses = compute_losses(model, docs, device=device)
    interval = mean_interval(losses.per_token())
    return {
        "documents": len(docs),
        "mean_loss": interval.mean,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "failed_documents": int((losses.status == STATUS_FAILED).sum()),
    }


def _print(console: Console, r: dict) -> None:
    t = Table(title=f"model check: {r['path']} ({r['competition']})", show_header=False)
    if r["accepted"]:
        t.add_row("verdict", "[green]accepted[/green]")
        t.add_row("architecture", r["architecture"])
        t.add_row("parameters", f"{r['n_params']:,}")
        if "mean_loss" in r:
            t.add_row("sample loss", f"{r['mean_loss']:.4f}  (95% CI {r['ci_low']:.4f} .. {r['ci_high']:.4f})")
            t.add_row("documents", f"{r['documents']} ({r['failed_documents']} failed)")
    else:
        t.add_row("verdict", "[red]rejected[/red]")
        t.add_row("reason", r["reason"])
        t.add_row("detail", r["detail"])
    console.print(t)
