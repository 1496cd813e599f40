"""How a benchmark is shown: the table a miner reads and the plot beside it.

Both show the same quantities (`subnet.miner.benchmark.loss_intervals`): each model's competition
loss (total NLL over total predicted tokens), the paired and unpaired intervals of the difference.
The plot's histograms are of per-document losses, but its legend and markers carry the table's loss,
because the mean of per-document losses (each document weighing the same) is a different number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from subnet.miner.benchmark import BLOCKS_PER_DAY, BenchmarkReport, loss_intervals

def report_table(report: BenchmarkReport, candidate_name: str = "candidate", incumbent_name: str = "incumbent"):
    """A rich table of the two means, the paired difference and the verdict."""
    from rich.table import Table

    pct = int(round(report.confidence * 100))
    table = Table(title=f"Benchmark on {report.n_documents} reference documents ({pct}% intervals)")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column(f"{pct}% interval", justify="right")

    def iv(low: float, high: float) -> str:
        return f"[{low:.5f}, {high:.5f}]"

    table.add_row(f"{candidate_name} loss (total NLL / total tokens)", f"{report.candidate.mean:.5f}", iv(report.candidate.low, report.candidate.high))
    table.add_row(f"{incumbent_name} loss (total NLL / total tokens)", f"{report.incumbent.mean:.5f}", iv(report.incumbent.low, report.incumbent.high))
    table.add_row("difference, unpaired", f"{report.unpaired_diff:+.5f}", iv(report.unpaired_ci_low, report.unpaired_ci_high))
    table.add_row("difference, paired", f"{report.paired.mean:+.5f}", iv(report.paired.low, report.paired.high))
    table.add_row("paired vs unpaired interval", report.width_comparison(), "")
    c = report.comparison
    table.add_row("validator's test: L_cand / L_inc - 1 (wins below -eps)", f"{c.diff_mean:+.4%}",
                  f"[{c.acc_low:+.4%}, {c.acc_high:+.4%}]")
    table.add_row("incumbent age", f"{report.incumbent_age_blocks:,.0f} blocks",
                  f"{report.incumbent_age_blocks / BLOCKS_PER_DAY:.1f} days")
    table.add_row("incumbent advantage now", f"{report.advantage_now:.4%}", "")
    table.add_row("incumbent advantage in a week", f"{report.advantage_week:.4%}", "")
    table.add_row("verdict", report.verdict.text, "")
    return table


def histogram_labels(report: BenchmarkReport) -> tuple[str, str]:
    """The histogram's legend: each model's competition loss, the very number the table shows
    (total NLL / total tokens), not the mean of the per-document losses drawn in the bars."""
    return (f"incumbent: loss {report.incumbent.mean:.5f}", f"candidate: loss {report.candidate.mean:.5f}")


def interval_curves(report: BenchmarkReport, sizes: np.ndarray) -> tuple[list[float], list[float]]:
    """Half-widths of the unpaired and paired intervals of the difference on the first n documents,
    computed exactly as the table's (`loss_intervals`)."""
    cand, inc = report.candidate_losses, report.incumbent_losses
    weights = np.ones_like(cand) if report.tokens is None else report.tokens
    unpaired, paired = [], []
    for n in sizes:
        tokens = None if report.tokens is None else weights[:n]
        _, _, p, (_, low, high) = loss_intervals(cand[:n] * weights[:n], inc[:n] * weights[:n], tokens,
                                                 report.confidence)
        unpaired.append((high - low) / 2)
        paired.append((p.high - p.low) / 2)
    return unpaired, paired


def plot_report(report: BenchmarkReport, path: Path | str) -> Path:
    """Per-document loss histograms marked with each model's competition loss, and the interval
    half-width vs number of documents (log-log), all computed as the table computes them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cand, inc = report.candidate_losses, report.incumbent_losses
    ok = np.isfinite(cand) & np.isfinite(inc)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    bins = np.linspace(min(cand[ok].min(), inc[ok].min()), max(cand[ok].max(), inc[ok].max()), 40)
    inc_label, cand_label = histogram_labels(report)
    for values, mean, label, color in ((inc[ok], report.incumbent.mean, inc_label, "C0"),
                                       (cand[ok], report.candidate.mean, cand_label, "C1")):
        left.hist(values, bins=bins, alpha=0.55, label=label, color=color)
        left.axvline(mean, color=color, linestyle="--")
    left.set_xlabel("per-token loss of a document (nats); dashed: total NLL / total tokens")
    left.set_ylabel("documents")
    left.legend()

    sizes = np.unique(np.geomspace(3, len(cand), num=min(30, len(cand))).astype(int))
    unpaired, paired = interval_curves(report, sizes)
    right.loglog(sizes, unpaired, "o-", label="unpaired (difference of two losses)")
    right.loglog(sizes, paired, "o-", label="paired (same documents)")
    right.set_xlabel("documents")
    right.set_ylabel(f"{int(round(report.confidence * 100))}% interval half-width of the loss difference (nats)")
    right.legend()
    right.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
