"""The loss curve of a training run, as CSV (DVC plots) and PNG."""

from __future__ import annotations

from pathlib import Path

from pipelines.core.io import atomic_write_text

#: Per-step columns of ``loss.csv``: all a function of the data and params (tokens/s goes to MLflow only).
FIELDS = ("step", "loss", "learning_rate", "grad_norm")
# matplotlib stamps its version into the PNG unless told otherwise; the bytes must depend on the data only
PNG_METADATA = {"Software": None}


def write_plots(history: list[dict[str, float]], plots: Path) -> None:
    """``loss.csv`` (:data:`FIELDS` per logged step of ``history``) and ``loss.png`` (loss and schedule)."""
    plots.mkdir(parents=True, exist_ok=True)
    rows = [",".join(FIELDS)] + [",".join(str(r[f]) for f in FIELDS) for r in history]
    atomic_write_text(plots / "loss.csv", "\n".join(rows) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot([r["step"] for r in history], [r["loss"] for r in history], marker=".")
    ax1.set(xlabel="step", ylabel="loss (assistant tokens)", title="SFT loss")
    ax2.plot([r["step"] for r in history], [r["learning_rate"] for r in history], color="tab:orange")
    ax2.set(xlabel="step", ylabel="learning rate", title="schedule")
    fig.tight_layout()
    fig.savefig(plots / "loss.png", dpi=100, metadata=PNG_METADATA)
    plt.close(fig)
