"""The sweep's plot: one panel per measure (the main metric first), against training samples, one line per
teacher subset.

The x axis is categorical: the untuned model at N = 0, then each size the sweep ran, evenly spaced (sizes
are roughly doubling, and 0 has no place on a log axis). The line is the mean over seeds with the seed
spread (sd) as error bars; beside it each seed's score with the eval's 95% interval as thin error bars
(a point alone where the eval gives no interval, as for a suite's score),
nudged sideways so that seeds at one size do not overlap. The two kinds of bar are kept apart because they
answer different questions (retraining noise, and task and trial sampling of one trained model). The
untuned model is drawn at N = 0 as the mean over the experiments that evaluated it (sd as error bar, each
seed's first interval as thin bars) and as a dashed line across the panel. The measures are rates: the y
axis is 0-100 (%) in every panel.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.tools.sweep.stats import Cell

NUDGE = 0.07  # sideways step between a cell's mean and each seed's point, in x categories


@dataclass
class Panel:
    """One measure's numbers: its title, the tuned cells and the untuned model's cell (size 0), and a note
    drawn instead when there is nothing to draw (e.g. a suite no experiment evaluated)."""

    title: str
    cells: list[Cell]
    base: Cell | None = None
    note: str | None = None
    ylabel: str = field(default="")


def _seed_bar(ax, x: float, value: float, found: list[float] | None, colour: Any) -> None:
    """One seed's value as a small point, with its 95% interval as a thin bar when the eval gave one."""
    yerr = [[max(value - found[0], 0.0)], [max(found[1] - value, 0.0)]] if found else None
    ax.errorbar([x], [value], yerr=yerr, fmt=".", color=colour, alpha=0.45, elinewidth=0.8, capsize=2)


def _first_per_seed(cell: Cell) -> list[tuple[float, list[float] | None]]:
    """The value and interval of the first experiment of each seed (the untuned cell has one per experiment)."""
    seen: dict[int, tuple[float, list[float] | None]] = {}
    spans = cell.intervals or [None] * len(cell.values)
    for seed, value, found in zip(cell.seeds, cell.values, spans):
        seen.setdefault(seed, (value, found))
    return list(seen.values())


def _draw_panel(ax, panel: Panel, position: dict[int, int], legend: bool) -> None:
    ax.set_ylim(0, 100)
    ax.set_title(panel.title, fontsize=10)
    ax.set_ylabel(panel.ylabel or "%", fontsize=9)
    ax.grid(alpha=0.3)
    if panel.note:
        ax.text(0.5, 0.5, textwrap.fill(panel.note, 44), ha="center", va="center", fontsize=8,
                transform=ax.transAxes)
    base = panel.base
    if base is not None and base.mean is not None:
        ax.axhline(base.mean, color="grey", linestyle="--", linewidth=1)
        ax.errorbar([0], [base.mean], yerr=[base.spread or 0.0], marker="s", color="grey", capsize=4,
                    label="untuned (N = 0)")
        for i, (value, found) in enumerate(_first_per_seed(base)):
            _seed_bar(ax, NUDGE * (i + 1), value, found, "grey")
    for label in dict.fromkeys(c.teachers for c in panel.cells):
        mine = [c for c in panel.cells if c.teachers == label and c.mean is not None]
        xs = [position[c.size] for c in mine]
        line = ax.errorbar(xs, [c.mean for c in mine], yerr=[c.spread or 0.0 for c in mine], marker="o",
                           capsize=4, label=f"teachers: {label}")
        colour = line.lines[0].get_color()
        for c in mine:
            spans = c.intervals or [None] * len(c.values)
            for i, (value, found) in enumerate(zip(c.values, spans)):
                _seed_bar(ax, position[c.size] + NUDGE * (i + 1), value, found, colour)
    ax.set_xticks(list(position.values()))
    ax.set_xticklabels(["0\n(untuned)" if s == 0 else str(s) for s in position], fontsize=8)
    ax.set_xlim(-0.5, max(position.values()) + 0.5)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")


def figure(panels: list[Panel], title: str):
    """The matplotlib figure: one axis per panel, in a grid, the same x categories in each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({c.size for p in panels for c in p.cells} - {0})
    position = {size: i for i, size in enumerate([0, *sizes])}
    cols = 1 if len(panels) == 1 else 2 if len(panels) <= 4 else 3
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.4 * rows + 0.6), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for i, (ax, panel) in enumerate(zip(flat, panels)):
        _draw_panel(ax, panel, position, legend=i == 0)
    for ax in flat[len(panels):]:
        fig.delaxes(ax)
    for ax in flat[max(len(panels) - cols, 0):len(panels)]:  # the bottom row of each column
        ax.set_xlabel("training samples (curate.target_size)", fontsize=8)
    fig.suptitle(f"{title}\nmean ± sd over seeds; thin bars: each seed's 95% eval interval", fontsize=10)
    fig.tight_layout()
    return fig


def plot(panels: list[Panel], out: Path, title: str):
    """Write ``out`` (PNG) with :func:`figure`; return the figure (closed: its axes can still be read)."""
    import matplotlib.pyplot as plt

    fig = figure(panels, title)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
    return fig
