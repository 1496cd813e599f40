"""`subnet model check PATH --competition ID`: would a validator accept this model, and how does it score?

Runs exactly the validator's checks (the store's file rules, safe loading and the competition's
constraints), then scores the model on a small sample of the competition's data with the
validator's engine. The verdict is the validator's: any failure goes through the same containment
boundary (`subnet.hub.contained.classify`), and a model whose every document fails to score is
rejected with the validator's reason. Exit code 1 and one `error:` line on stderr when it would be
rejected; never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from subnet.commands.boundary import CONTEXT_SETTINGS, CommandError

app = typer.Typer(help="Check a model as a validator would.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, context_settings=CONTEXT_SETTINGS)


@app.command("check")
def check(
    path: Path = typer.Argument(..., exists=True, file_okay=False, help="A local model directory."),
    competition: Optional[str] = typer.Option(None, "--competition", "-c", envvar="SUBNET_COMPETITION",
                                              help="Competition id. Default: the network's (b3 on finney)."),
    network: str = typer.Option("finney", "--network", envvar=["SUBNET_NETWORK", "BT_NETWORK"],
                                help="Whose default competition to check against: finney | test | devnet:PATH ..."),
    competitions_file: Path = typer.Option(None, "--competitions-file", help="TOML/JSON competitions."),
    documents: int = typer.Option(64, "--documents", help="How many sample documents to score (0: skip scoring)."),
    device: str = typer.Option("cpu", "--device", help="cpu | auto | cuda | cuda:N: where to load and score the model."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on the last line."),
) -> None:
    """Run the validator's loading checks on PATH and score it on a small sample."""
    from subnet.competitions import CompetitionError, default_competition, get_competition, load_competitions

    from subnet.commands.boundary import UsageProblem, load_option_file
    from subnet.devices import DeviceError, resolve_device

    console = Console(stderr=as_json)
    table = (load_option_file("--competitions-file", competitions_file, load_competitions, "competitions")
             if competitions_file else None)
    try:
        comp = get_competition(competition or default_competition(network, table), table)
    except CompetitionError as e:  # a usage error: say which competition, not a traceback
        raise UsageProblem(f"--competition: {e}") from None
    try:
        device = resolve_device(device)
    except DeviceError as e:
        raise UsageProblem(f"--device: {e}") from None
    result = check_directory(path, comp, documents, device)
    _print(console, result)
    if as_json:
        print(json.dumps(result))
    if not result["accepted"]:  # the boundary's one line (exit 1, a domain error); the table says more
        raise CommandError(f"{path} rejected: {result['reason']}: {result['detail']}")


def check_directory(path: Path, comp, documents: int, device: str) -> dict:
    """The validator's verdict on a local model directory, as a dict (never raises)."""
    from subnet.hub.contained import classify

    result: dict = {"path": str(path), "competition": comp.id}
    try:
        info = _check_files_and_config(path, comp)
        result.update(accepted=True, architecture=info.architecture, n_params=info.n_params)
        if documents > 0:
            from subnet.hub.loading import load_model

            model = load_model(path, comp, device=device)
            result.update(_score_sample(model, comp, documents, device))
            if result["no_score"]:
                result.update(accepted=False, reason=result["no_score"],
                              detail=result.pop("no_score_detail", result["no_score"]))
    except Exception as e:  # noqa: BLE001 - the validator's containment boundary: a verdict, not a traceback
        failure = classify(e)
        result.update(accepted=False, reason=failure.reason, detail=failure.detail, transient=failure.transient)
    return result


def _check_files_and_config(path: Path, comp):
    """What the validator checks before scoring: the store's file rules, then safe loading's checks."""
    from subnet.hub.download import check_listing, local_listing
    from subnet.hub.loading import check_model_dir

    check_listing(local_listing(path), comp.max_bytes)
    return check_model_dir(path, comp)


def _score_sample(model, comp, n_documents: int, device: str) -> dict:
    from subnet.data.sampling import tokenize_documents
    from subnet.data.sources import make_source
    from subnet.data.tokenizer import load_tokenizer
    from subnet.eval.engine import compute_losses
    from subnet.eval.types import STATUS_FAILED
    from subnet.scoring.loss import competition_loss, document_nll

    source = make_source(comp)
    pages = max(1, -(-n_documents // comp.sampling.page_size))
    data = source.fetch_round("0x" + "00" * 32, pages, comp.sampling.page_size, n_documents)
    docs = tokenize_documents(data.documents, load_tokenizer(comp.tokenizer), comp.max_seq_len, data.digest)
    from subnet.progress import WorkProgress
    from subnet.scoring.wins import Candidate, failure_reason

    if comp.generation_check.enabled:  # the validator's generation check, on this sample's prompts
        from subnet.eval.generation import check_generation

        verdict = check_generation(model, docs, comp.generation_check, device)
        if verdict.failure:
            return {"no_score": verdict.error, "no_score_detail": verdict.detail, "documents": len(docs)}
    with WorkProgress("scoring", len(docs), "docs") as progress:
        losses = compute_losses(model, docs, device=device, on_documents=progress.advance)
    per_token = losses.per_token()
    interval = competition_loss(document_nll(losses), losses.n_tokens)  # the competition's one loss
    return {
        "no_score": failure_reason(Candidate("model", 0, per_token)),  # the validator's reason, or None
        "documents": len(docs),
        "mean_loss": interval.mean,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "failed_documents": int((losses.status == STATUS_FAILED).sum()),
    }


def _print(console: Console, r: dict) -> None:
    """A table of the verdict. Every value is plain text: a hostile detail or path is never read as markup."""
    t = Table(title=Text(f"model check: {r['path']} ({r['competition']})"), show_header=False)
    if r["accepted"]:
        t.add_row("verdict", Text("accepted", style="green"))
        t.add_row("architecture", Text(r["architecture"]))
        t.add_row("parameters", f"{r['n_params']:,}")
        if "mean_loss" in r:
            t.add_row("sample loss", f"{r['mean_loss']:.4f}  (95% CI {r['ci_low']:.4f} .. {r['ci_high']:.4f})")
            t.add_row("documents", f"{r['documents']} ({r['failed_documents']} failed)")
    else:
        t.add_row("verdict", Text("rejected", style="red"))
        t.add_row("reason", Text(str(r["reason"])))
        t.add_row("detail", Text(str(r["detail"])))
    console.print(t)
