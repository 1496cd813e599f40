"""`subnet miner compare`: score runs or models on the same held-out documents and say which changes helped.

A target is a model directory, a checkpoint (`.../checkpoints/step_N`), or a training run's
output directory (its final `model/`). Runs carry their config, so seeds of one configuration
are recognised by themselves (configs equal but for the seed) and tested as a group.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from subnet.miner.checkpoint import MODEL_SUBDIR, TRAINER_STATE, list_checkpoints, load_trainer_state
from subnet.miner.config import RESUMABLE_CHANGES
from subnet.miner.experiments import ExperimentReport, analyse

# Config fields that name a run rather than what it does: two runs differing only here are seeds of one config.
_NOT_THE_EXPERIMENT = RESUMABLE_CHANGES | {"seed"}


@dataclass(frozen=True)
class Target:
    name: str
    model_dir: Path
    run_dir: Path | None = None
    config: dict | None = None
    kind: str = "model"  # "run" (a finished run's final model), "checkpoint" or "model"


def resolve_target(path: Path) -> Target:
    """What a path on the command line means: a run, a checkpoint, or a plain model directory."""
    path = Path(path)
    name = str(path)
    if (path / TRAINER_STATE).is_file() and (path / MODEL_SUBDIR).is_dir():  # a checkpoint
        return Target(name, path / MODEL_SUBDIR, path.parent.parent, load_trainer_state(path)["config"], "checkpoint")
    if (path / MODEL_SUBDIR / "config.json").is_file():  # a run's output directory
        checkpoints = list_checkpoints(path)
        config = load_trainer_state(checkpoints[-1])["config"] if checkpoints else None
        return Target(name, path / MODEL_SUBDIR, path, config, "run")
    if (path / "config.json").is_file():
        return Target(name, path)
    raise ValueError(f"{path} is not a model directory, a checkpoint or a training run's output directory")


def seed_groups(targets: list[Target]) -> dict[str, list[str]]:
    """Finished runs whose configs are equal but for the seed (and bookkeeping), by a short config hash.

    Checkpoints are steps of a run, not independent draws of its outcome: they never join a group.
    """
    groups: dict[str, list[str]] = {}
    for t in targets:
        if t.config is None or t.kind != "run":
            continue
        experiment = {k: v for k, v in sorted(t.config.items()) if k not in _NOT_THE_EXPERIMENT}
        key = "config-" + hashlib.sha256(json.dumps(experiment, sort_keys=True).encode()).hexdigest()[:8]
        groups.setdefault(key, []).append(t.name)
    return {k: v for k, v in groups.items() if len(v) >= 2}


def run_compare(paths: list[Path], competition, *, baseline: str | None = None, n_documents: int = 0,
                dataset: str = "", device: str = "auto", confidence: float = 0.95,
                progress=None) -> tuple[ExperimentReport, list[Target]]:
    from subnet.eval.engine import compute_losses
    from subnet.hub.loading import load_model
    from subnet.miner.benchmark import reference_set, resolve_device

    targets = [resolve_target(p) for p in paths]
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ValueError("each model may be named once")
    base = baseline or names[0]
    if base not in names:
        raise ValueError(f"--baseline {base!r} is not one of the compared targets {names}")
    docs = reference_set(competition, n_documents, dataset)
    device = resolve_device(device)
    scored = {}
    for t in targets:
        model = load_model(t.model_dir, competition, device=device)
        scored[t.name] = compute_losses(model, docs, device=device)
        del model
        if progress is not None:
            progress(t.name)
    return analyse(scored, base, seed_groups(targets), confidence), targets


def report_tables(report: ExperimentReport):
    """Rich tables: each model against the baseline, then configurations across seeds."""
    from rich.table import Table

    pct = f"{report.confidence:.0%}"
    pairs = Table(title=f"paired against {report.baseline} on {report.n_documents} held-out documents "
                        "(per-token loss; negative = better)")
    for col in ("model", "loss", "diff", f"{pct} interval", "p", "p (Holm)"):
        pairs.add_column(col, justify="left" if col == "model" else "right")
    pairs.add_row(report.baseline, f"{report.losses[report.baseline]:.5f}", "baseline", "", "", "")
    for r in report.pairs:
        pairs.add_row(r.name, f"{report.losses[r.name]:.5f}", f"{r.diff:+.5f}", f"[{r.ci_low:+.5f}, {r.ci_high:+.5f}]",
                      f"{r.p_value:.3g}", f"{r.p_holm:.3g}")
    tables = [pairs]
    if report.groups:
        seeds = Table(title="configurations across seeds (Welch's t over runs; bootstrapped p: 5% / 50% / 95%)")
        for col in ("config", "runs", "mean loss", "spread (sd)", "diff", "p", "bootstrap p"):
            seeds.add_column(col, justify="left" if col in ("config", "runs") else "right")
        for g in report.groups:
            lo, mid, hi = g.p_bootstrap
            seeds.add_row(g.name, ", ".join(g.runs), f"{g.mean:.5f}", f"{g.spread:.5f}",
                          "baseline" if g.baseline is None else f"{g.diff:+.5f}",
                          "" if g.baseline is None else f"{g.p_value:.3g}",
                          "" if g.baseline is None else f"{lo:.3g} / {mid:.3g} / {hi:.3g}")
        tables.append(seeds)
    return tables


def report_json(report: ExperimentReport) -> str:
    def clean(x):
        if isinstance(x, float):
            return x if x == x and abs(x) != float("inf") else None
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        return x

    return json.dumps(clean({
        "baseline": report.baseline, "n_documents": report.n_documents, "losses": report.losses,
        "pairs": [r.__dict__ for r in report.pairs], "groups": [g.__dict__ for g in report.groups],
    }))


def short_labels(names: list[str]) -> dict[str, str]:
    """Names without the directories they all share, so plots show what differs."""
    import os

    parts = [Path(n).parts for n in names]
    same_kind = len({Path(n).is_absolute() for n in names}) == 1
    common = len(Path(os.path.commonpath(names)).parts) if len(names) > 1 and same_kind else 0
    common = min(common, min(len(p) for p in parts) - 1)
    return {n: str(Path(*p[common:])) for n, p in zip(names, parts)}


def plot_compare(report: ExperimentReport, targets: list[Target], path: Path) -> Path:
    """Training loss curves (seeds of one config as a band) and each model's paired difference with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from subnet.miner.train import METRICS_FILE

    label = short_labels([t.name for t in targets])
    curves = {}
    for t in targets:
        metrics = t.run_dir / METRICS_FILE if t.kind == "run" else None  # a checkpoint's curve is its run's
        if metrics is not None and metrics.is_file():
            rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
            curves[t.name] = ([r["step"] for r in rows], [r["loss"] for r in rows])
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    grouped = {m for g in report.groups for m in g.runs}
    for g in report.groups:
        members = [m for m in g.runs if m in curves]
        if not members:
            continue
        steps = curves[members[0]][0]
        length = min(len(curves[m][1]) for m in members)
        values = np.array([curves[m][1][:length] for m in members])
        line, = left.plot(steps[:length], values.mean(0),
                          label=f"{g.name}: {', '.join(label[m] for m in members)} ({len(members)} seeds)")
        left.fill_between(steps[:length], values.min(0), values.max(0), alpha=0.25, color=line.get_color())
    for name, (steps, losses) in curves.items():
        if name not in grouped:
            left.plot(steps, losses, label=label[name])
    left.set_xlabel("step")
    left.set_ylabel("training loss")
    left.set_title("training loss (band: min-max over seeds)")
    if curves:
        left.legend(fontsize=8, loc="upper right")
    names = [r.name for r in report.pairs]
    y = np.arange(len(names))
    diffs = np.array([r.diff for r in report.pairs])
    err = np.array([[r.diff - r.ci_low for r in report.pairs], [r.ci_high - r.diff for r in report.pairs]])
    right.errorbar(diffs, y, xerr=err, fmt="o", capsize=4)
    right.axvline(0, color="grey", lw=1)
    right.set_yticks(y, [label[n] for n in names], fontsize=8)
    right.set_xlabel(f"per-token loss minus {label[report.baseline]}'s ({report.confidence:.0%} interval)")
    right.set_title("paired difference from the baseline")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
