"""`subnet scores --plot`: who leads, by how much, and whether the difference is real.

Two panels per competition. The top one has one series per model (not per uid: a new model at a
uid is a new series), losses over rounds on a log axis; copies are drawn hollow and dashed, nudged
sideways so they never hide the model they copied; the weight holder is drawn thick with a star.
The bottom one answers the question the top cannot (intervals of width 0.01 are invisible on a 1-6
axis): each model's paired per-document difference from the leader in the latest round, with its
95% interval. The legend sits outside the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Series:
    model_id: int
    hotkey: str
    label: str
    copy_of: str | None = None
    copy_of_uid: int | None = None
    points: list[tuple[int, float, float, float]] = field(default_factory=list)  # block, mean, low, high


@dataclass
class PairedDiff:
    label: str
    mean: float
    low: float
    high: float
    copy: bool
    copy_of_uid: int | None = None


@dataclass
class CompetitionPlot:
    competition: str
    series: dict[int, Series]
    holder: str | None  # hotkey holding the largest weight
    leader: str = ""  # label of the model the differences are taken from
    round_block: int | None = None
    diffs: list[PairedDiff] = field(default_factory=list)


class NothingToPlot(RuntimeError):
    pass


def collect(state, competition: str | None = None, last_rounds: int = 1000) -> list[CompetitionPlot]:
    """Everything the figure shows: the leaderboard's series and differences (subnet.validator.leaderboard)."""
    from subnet.validator.leaderboard import leader_differences, loss_history

    plots: dict[str, CompetitionPlot] = {}
    for raw in loss_history(state, competition, last_rounds)["series"]:
        if not raw["points"] or raw["model_id"] is None:
            continue
        cid = raw["competition"]
        plot = plots.setdefault(cid, CompetitionPlot(cid, {}, None))
        label = f"uid {raw['uid']} {raw['model'] or raw['hotkey'][:8]}"
        plot.series[raw["model_id"]] = Series(raw["model_id"], raw["hotkey"], label, raw["copy_of"],
                                              raw.get("copy_of_uid"), [(p[1], p[2], p[3], p[4]) for p in raw["points"] if p[1] is not None])
    if not any(s.points for p in plots.values() for s in p.series.values()):
        raise NothingToPlot("no scored rounds to plot yet")
    for cid, plot in plots.items():
        found = leader_differences(state, cid)
        plot.holder = found["leader"]
        newest = {}  # hotkey -> label of its newest model
        for s in sorted(plot.series.values(), key=lambda s: s.points[-1][0] if s.points else -1):
            newest[s.hotkey] = s.label
        plot.leader = newest.get(plot.holder, plot.holder or "")
        if found["round_id"] is not None:
            plot.round_block = state.round_blocks([found["round_id"]]).get(found["round_id"])
        copies = {s.hotkey: s.copy_of_uid for s in plot.series.values() if s.copy_of}
        plot.diffs = [PairedDiff(newest.get(d["hotkey"], d["hotkey"][:8]), d["diff"],
                                 d["diff"] if d["ci_low"] is None else d["ci_low"],
                                 d["diff"] if d["ci_high"] is None else d["ci_high"], d["hotkey"] in copies,
                                 copies.get(d["hotkey"]))
                      for d in found["differences"] if d["diff"] is not None]
    return [plots[c] for c in sorted(plots)]


def _copy_label(plot: CompetitionPlot, s: Series) -> str:
    """ "uid 5 miner/x@ab (copy of uid 3)": the copied model by the uid every table shows."""
    if s.copy_of_uid is not None:
        return f"{s.label} (copy of uid {s.copy_of_uid})"
    original = next((o for o in plot.series.values() if o.hotkey == s.copy_of), None)
    return f"{s.label} (copy of {' '.join(original.label.split(' ')[:2]) if original else s.copy_of[:8]})"


def _diff_label(d: PairedDiff) -> str:
    if not d.copy:
        return d.label
    return d.label + (f" (copy of uid {d.copy_of_uid})" if d.copy_of_uid is not None else " (copy)")


def draw(plots: list[CompetitionPlot], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2 * len(plots), 1, figsize=(13, 8.5 * len(plots)), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 2] * len(plots)}, layout="constrained")
    for i, plot in enumerate(plots):
        _draw_history(axes[2 * i][0], plot)
        _draw_diffs(axes[2 * i + 1][0], plot)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _draw_history(ax, plot: CompetitionPlot) -> None:
    blocks = sorted({p[0] for s in plot.series.values() for p in s.points})
    step = min(np.diff(blocks)) if len(blocks) > 1 else 1.0
    colors = iter(__import__("matplotlib").colormaps["tab10"].colors * 10)
    # The holder's current model: its newest series (an older model of the same hotkey holds nothing now).
    holder_series = max((s for s in plot.series.values() if s.hotkey == plot.holder and not s.copy_of),
                        key=lambda s: s.points[-1][0], default=None)
    for s in sorted(plot.series.values(), key=lambda s: (s.copy_of is not None, s.label)):
        b, mean, lo, hi = (np.array(v, dtype=float) for v in zip(*s.points))
        holder = s is holder_series
        if s.copy_of:  # hollow, dashed and nudged right: never on top of the model it copies
            ax.errorbar(b + 0.12 * step, mean, yerr=[mean - lo, hi - mean], fmt="--o", mfc="none", capsize=3,
                        color="0.45", zorder=2, label=_copy_label(plot, s))
            continue
        color = next(colors)
        ax.errorbar(b, mean, yerr=[mean - lo, hi - mean], fmt="-o", capsize=3, color=color, zorder=3,
                    lw=3 if holder else 1.5, label=s.label + ("  ★ holds the weight" if holder else ""))
        if holder:
            ax.plot(b[-1:], mean[-1:], marker="*", ms=18, color=color, mec="black", zorder=4, ls="none")
    from matplotlib.ticker import FormatStrFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xlabel("block of the round")
    ax.set_ylabel("mean loss per token (log scale, 95% CI)")
    ax.set_title(f"{plot.competition}: each model's loss over rounds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _draw_diffs(ax, plot: CompetitionPlot) -> None:
    ax.axvline(0.0, color="black", lw=1)
    if not plot.diffs:
        ax.text(0.5, 0.5, "no per-document losses to compare yet", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_yticks([])
    for y, d in enumerate(plot.diffs):
        ax.errorbar([d.mean], [y], xerr=[[d.mean - d.low], [d.high - d.mean]], fmt="o", capsize=4,
                    mfc="none" if d.copy else None, color="0.45" if d.copy else "C0")
        ax.annotate(f"{d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}]", (d.mean, y), textcoords="offset points",
                    xytext=(0, 7), ha="center", fontsize=8)
    ax.set_yticks(range(len(plot.diffs)), [_diff_label(d) for d in plot.diffs], fontsize=8)
    ax.set_ylim(-0.7, max(len(plot.diffs), 1) - 0.3)
    ax.set_xlabel(f"paired loss difference from the leader, {plot.leader} (> 0: worse; 95% CI)")
    ax.set_title(f"{plot.competition}: latest round (block {plot.round_block}), per-document difference from "
                 "the leader")
    ax.grid(True, axis="x", alpha=0.3)
