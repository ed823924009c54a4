"""The sweep's plot: the main metric against training samples, one line per teacher subset.

The line is the mean over seeds with the seed spread (sd) as error bars; beside it each seed's score with
the eval's 95% interval as thin error bars, nudged sideways so that seeds at one size do not overlap. The
two kinds of bar are kept apart because they answer different questions (retraining noise, and task and
trial sampling of one trained model)."""

from __future__ import annotations

from pathlib import Path

from pipelines.tools.sweep.stats import Cell


def plot(cells: list[Cell], base: float | None, metric: str, out: Path, title: str) -> None:
    """Write ``out`` (PNG): mean and spread of ``metric`` against sample count, one line per teacher subset,
    and each seed's score with its eval interval where the eval gave one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label in dict.fromkeys(c.teachers for c in cells):
        mine = [c for c in cells if c.teachers == label and c.mean is not None]
        xs = [c.size for c in mine]
        line = ax.errorbar(xs, [c.mean for c in mine], yerr=[c.spread or 0.0 for c in mine], marker="o",
                           capsize=4, label=f"teachers: {label}")
        colour = line.lines[0].get_color()
        for c in mine:
            for i, (value, found) in enumerate(zip(c.values, c.intervals)):
                if not found:
                    continue
                x = c.size * (1 + 0.03 * (i + 1))  # right of the mean, seeds apart
                ax.errorbar([x], [value], yerr=[[max(value - found[0], 0.0)], [max(found[1] - value, 0.0)]],
                            fmt=".", color=colour, alpha=0.45, elinewidth=0.8, capsize=2)
    if base is not None:
        ax.axhline(base, color="grey", linestyle="--", linewidth=1, label="untuned base")
    sizes = sorted({c.size for c in cells})
    if sizes and sizes[-1] >= 4 * sizes[0]:
        ax.set_xscale("log", base=2)
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(s) for s in sizes])
    ax.set_xlabel("training samples (curate.target_size)")
    ax.set_ylabel(f"{metric} (mean ± sd over seeds;\nthin bars: each seed's 95% eval interval)", fontsize=9)
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]), top=max(ax.get_ylim()[1], 1.0))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
