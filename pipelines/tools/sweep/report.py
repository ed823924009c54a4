"""The sweep's report: ``reports/sweep.md`` and ``plots/sweep.png`` from the experiments' results, logged to MLflow.

``report`` collects each point's numbers (:mod:`pipelines.tools.sweep.results`), groups them into
cells over seeds (:mod:`pipelines.tools.sweep.stats`), writes the Markdown and the plot, logs the
numbers to the points' runs and both files to the sweep's run, and closes the runs of what has ended.
"""

from __future__ import annotations

import logging
import math
import statistics
from pathlib import Path
from typing import Any

from pipelines.core.io import atomic_write_text
from pipelines.core.mlflow_runs import RunStore
from pipelines.tools.sweep.plots import plot
from pipelines.tools.sweep.record import DONE, load_record
from pipelines.tools.sweep.results import experiment_data, point_rows
from pipelines.tools.sweep.stats import Cell, Comparison, build_cells, compare

log = logging.getLogger(__name__)

REPORT = Path("reports") / "sweep.md"
PLOT = Path("plots") / "sweep.png"


def report(root: Path, sweep_id: str | None = None, wall_s: float | None = None) -> dict[str, Any]:
    """Collect the sweep's results; write reports/sweep.md and plots/sweep.png; log them to MLflow.

    ``sweep_id``: the latest sweep when None. Returns the files' paths, the rows, the cells and the baseline.
    """
    record = load_record(root, sweep_id)
    rows = point_rows(record, experiment_data(root, record.get("baseline_rev")))
    cells = build_cells(rows)
    bases = [r["base_score"] for r in rows if r.get("base_score") is not None]
    base = statistics.fmean(bases) if bases else None
    metric = record["main_metric"]
    wall_s = wall_s if wall_s is not None else record.get("wall_seconds") or _wall_from_mlflow(record, rows)
    text = render_report(record, rows, cells, base, wall_s)
    atomic_write_text(root / REPORT, text)
    first = next((r for r in rows if r.get("score") is not None), {})
    done = sum(1 for r in rows if r.get("score") is not None)
    title = (f"{metric} vs training samples ({first.get('tasks', '?')} tasks, k={first.get('k', '?')}, "
             f"seeds {', '.join(map(str, record['seeds']))}"
             + (f"; {done} of {len(rows)} experiments" if done < len(rows) else "") + ")")
    plot(cells, base, metric, root / PLOT, title)
    summary = {"report": str(root / REPORT), "plot": str(root / PLOT), "rows": rows, "base": base,
               "cells": [{"teachers": c.teachers, "size": c.size, "mean": c.mean, "spread": c.spread,
                          "values": c.values} for c in cells]}
    _log_report(record, rows, cells, base, root)
    return summary


def _per_model(row: dict[str, Any]) -> Any:
    tasks, k = row.get("tasks"), row.get("k")
    return tasks * k if isinstance(tasks, int) and isinstance(k, int) else "?"


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}"


def render_report(record: dict[str, Any], rows: list[dict[str, Any]], cells: list[Cell], base: float | None,
                  wall_s: float | None = None) -> str:
    """The Markdown of ``reports/sweep.md``: the setup, a row per cell with its comparisons, a row per experiment."""
    metric = record["main_metric"]
    ok = [r for r in rows if r.get("score") is not None]
    first = ok[0] if ok else {}
    params = first.get("params") or {}
    base_model = (params.get("base_model") or {}).get("source", "?")
    eval_p = params.get("eval") or {}
    models = {m["name"]: m for m in eval_p.get("models", [])}
    tuned = models.get(first.get("tuned") or "", {})
    llm = ((params.get("llm") or {}).get("models") or {}).get(tuned.get("model", ""), {})
    suites = ", ".join(f"{s['name']} (first {s['limit']})" if s.get("limit") else s["name"]
                       for s in eval_p.get("suites", [])) or ", ".join(first.get("suites") or []) or "?"
    lines = [f"# Sample-efficiency sweep `{record['id']}`", "",
             "## Setup", "",
             f"- Model: base `{base_model}` ({llm.get('backend', '?')} backend, {llm.get('path', llm.get('model', '?'))}), "
             f"fine-tuned with {(params.get('sft') or {}).get('method', '?')} for "
             f"{(params.get('sft') or {}).get('epochs', '?')} epoch(s) per point",
             f"- Eval suite: {suites}; {first.get('tasks', '?')} tasks, k = {first.get('k', '?')} trial(s) per task "
             f"and model ({_per_model(first)} trials per model and experiment), R = {first.get('rounds', '?')} rounds",
             f"- Main metric: `{metric}` (0-100) of the fine-tuned model (eval.main_metric)",
             f"- Points: sizes {', '.join(map(str, record['sizes']))}; seeds {', '.join(map(str, record['seeds']))} "
             f"(curate.seed and sft.seed); teacher subsets {', '.join(record['subsets'])}",
             f"- Curate-eligible trajectories: "
             + ", ".join(f"{k} {v}" for k, v in record.get("available", {}).items()),
             f"- Experiments: {len(rows)} queued, {len(ok)} with results; baseline commit "
             f"`{(record.get('baseline_rev') or '?')[:12]}`" + (f"; wall time {wall_s / 60:.1f} min" if wall_s else ""),
             f"- Untuned baseline ({first.get('base_name') or 'base'}): {_fmt(base)}"
             + ("" if base is not None else " (not evaluated in this sweep)")]
    lines += [f"- {note}" for note in record.get("notes", [])]
    lines += ["", "## Results", "",
              f"Mean and spread (sample standard deviation over seeds) of `{metric}`. A difference counts as "
              "significant only when it is larger than the spread over seeds; with one seed nothing is claimed.", "",
              f"| teachers | samples | seeds | {metric} mean | spread | per seed | Δ vs previous size | significant | "
              f"Δ vs untuned | significant |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    previous: dict[str, Cell] = {}
    for cell in cells:
        prev = previous.get(cell.teachers)
        step = compare(cell, prev) if prev else Comparison(None, None, None)
        vs_base = compare(cell, None, base)
        kept = sorted(set(cell.kept))
        samples = f"{cell.size}" + (f" (kept {', '.join(map(str, kept))})" if kept and kept != [cell.size] else "")
        per_seed = ", ".join(f"s{s}: {_fmt(v)}" for s, v in zip(cell.seeds, cell.values))
        lines.append(f"| {cell.teachers} | {samples} | {len(cell.values)} | {_fmt(cell.mean)} | {_fmt(cell.spread)} | "
                     f"{per_seed} | {_signed(step.delta) if prev else '-'} | {step.label if prev else '-'} | "
                     f"{_signed(vs_base.delta)} | {vs_base.label} |")
        previous[cell.teachers] = cell
    lines += ["", "## Experiments", "", "| experiment | teachers | size | seed | status | kept | "
              f"{metric} | sft final loss | train tokens |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['teachers']} | {r['size']} | {r['seed']} | {r['status']} | "
                     f"{r.get('kept', 'n/a') if r.get('kept') is not None else 'n/a'} | {_fmt(r.get('score'))} | "
                     f"{_fmt(r.get('final_loss'), 3)} | {r.get('train_tokens') or 'n/a'} |")
    lines += ["", "`dvc exp show` lists these experiments by name; each is a child of the MLflow run "
              f"`{record['id']}` (tags `sweep.id`, `sweep.size`, `sweep.seed`, `sweep.teachers`).", ""]
    return "\n".join(lines)


def _wall_from_mlflow(record: dict[str, Any], rows: list[dict[str, Any]]) -> float | None:
    """Seconds from the sweep run's start to the end of its last stage run, once no experiment is waiting
    (for a sweep whose queue was started and waited on by someone else, e.g. ``--no-wait``)."""
    if any(r["status"] in ("Queued", "Running") for r in rows):
        return None
    try:
        store = RunStore(record["tracking_uri"], record["experiment_id"])
        return store.seconds_to_last_end(record["run_id"], "sweep.id", record["id"], ("sweep", "sweep-point"))
    except Exception:
        return None


def _log_report(record: dict[str, Any], rows: list[dict[str, Any]], cells: list[Cell], base: float | None,
                root: Path) -> None:
    """Each point's numbers to its run, the cells and the files to the sweep run; close what has ended."""
    try:
        store = RunStore(record["tracking_uri"], record["experiment_id"])
        metric = record["main_metric"]
        for r in rows:
            if not r.get("run_id"):
                continue
            if r["status"] in DONE and store.is_running(r["run_id"]):
                store.terminate(r["run_id"], r["status"] == "Success")
            store.log_metrics(r["run_id"], {f"eval.{metric}": r.get("score"), "curate.kept": r.get("kept"),
                                            "sft.final_loss": r.get("final_loss"),
                                            f"eval.base.{metric}": r.get("base_score")})
        run_id = record["run_id"]
        summary: dict[str, float | None] = {}
        for c in cells:
            summary.update({f"{c.teachers}.n{c.size}.mean": c.mean, f"{c.teachers}.n{c.size}.spread": c.spread})
        store.log_metrics(run_id, {**summary, f"base.{metric}": base})
        store.log_files(run_id, [root / REPORT, root / PLOT])
        if any(r["status"] in ("Queued", "Running") for r in rows):
            return  # a report of a sweep still running: the run stays open for the final one
        failed = sum(1 for r in rows if r["status"] != "Success")
        store.set_tag(run_id, "sweep.failed", str(failed))
        store.terminate(run_id, not failed)
    except Exception as exc:  # the files are written; the record is what failed
        log.warning("MLflow logging of the sweep report failed (%s); reports/sweep.md and plots/sweep.png are "
                    "written", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
