"""The sweep's report: ``reports/sweep.md`` and ``plots/sweep.png`` from the experiments' results, logged to MLflow.

``report`` collects each point's numbers (:mod:`pipelines.tools.sweep.results`), groups them into
cells over seeds (:mod:`pipelines.tools.sweep.stats`), writes the Markdown and the plot, logs the
numbers to the points' runs and both files to the sweep's run, and closes the runs of what has ended.

Scores carry the eval's 95% intervals in brackets as ``reports/eval.md`` writes them ("12.0 [5.0, 20.0]",
deltas signed "+3.0 [-1.0, +7.0]"): per seed, since seeds share the eval tasks and their intervals cannot
be merged into one for the mean (the reading is argued in :mod:`pipelines.tools.sweep.stats`). Δ vs
untuned is judged by the paired interval ("above zero" or "no significant difference"), Δ vs the
previous size by the spread over seeds. Each measure (:mod:`pipelines.tools.sweep.measures`) gets a table:
the untuned model as N = 0, then per size the mean ± sd over seeds, each seed's value and the paired verdict,
with a reading line (the verdict at the largest size, and the sizes above zero); the plot a panel.
"""

from __future__ import annotations

import logging
import math
import statistics
from pathlib import Path
from typing import Any

from pipelines.core.io import atomic_write_text
from pipelines.core.mlflow_runs import RunStore
from pipelines.tools.sweep.measures import Measure, record_measures
from pipelines.tools.sweep.plots import Panel, plot
from pipelines.tools.sweep.record import DONE, WAITING, load_record
from pipelines.tools.sweep.results import experiment_data, point_rows
from pipelines.tools.sweep.stats import Cell, Comparison, base_cell, build_cells, compare, paired

log = logging.getLogger(__name__)

REPORT = Path("reports") / "sweep.md"
PLOT = Path("plots") / "sweep.png"


def report(root: Path, sweep_id: str | None = None, wall_s: float | None = None,
           measures: list[Measure] | None = None) -> dict[str, Any]:
    """Collect the sweep's results; write reports/sweep.md and plots/sweep.png; log them to MLflow.

    ``sweep_id``: the latest sweep when None; ``measures``: those the sweep record names when None. Returns
    the files' paths, the rows, the cells and the baseline.
    """
    record = load_record(root, sweep_id)
    measures = record_measures(record) if measures is None else measures
    rows = point_rows(record, experiment_data(root, record.get("baseline_rev")), measures)
    cells = build_cells(rows)
    bases = [r["base_score"] for r in rows if r.get("base_score") is not None]
    base = statistics.fmean(bases) if bases else None
    wall_s = wall_s if wall_s is not None else record.get("wall_seconds") or _wall_from_mlflow(record, rows)
    text = render_report(record, rows, cells, base, wall_s, measures)
    atomic_write_text(root / REPORT, text)
    first = next((r for r in rows if r.get("score") is not None), {})
    done = sum(1 for r in rows if r.get("score") is not None)
    title = (f"sweep {record['id']} ({first.get('tasks', '?')} tasks, k={first.get('k', '?')}, "
             f"seeds {', '.join(map(str, record['seeds']))}"
             + (f"; {done} of {len(rows)} experiments" if done < len(rows) else "") + ")")
    plot(panels(record, rows, measures), root / PLOT, title)
    summary = {"report": str(root / REPORT), "plot": str(root / PLOT), "rows": rows, "base": base,
               "cells": [{"teachers": c.teachers, "size": c.size, "mean": c.mean, "spread": c.spread,
                          "values": c.values, "intervals": c.intervals} for c in cells]}
    _log_report(record, rows, cells, base, root, measures)
    return summary


def _protocol(rows: list[dict[str, Any]]) -> tuple[Any, Any]:
    """(R, k) of the eval, for the metrics' names (SR@R, pass@k); "R" and "k" when no row has them."""
    return _first(rows, "rounds") or "R", _first(rows, "k") or "k"


def _absent(measure: Measure, rows: list[dict[str, Any]]) -> str | None:
    """Why ``measure`` has no numbers at all, when it has none: its suite evaluated nowhere, or no result yet."""
    done = [r for r in rows if r.get("measures")]
    if any((r["measures"].get(measure.key) or {}).get("evaluated") for r in done):
        return None
    if not done:
        return "no experiment has an eval result yet"
    suites = sorted({s for r in done for s in r.get("suites") or []})
    return (f"suite {measure.suite!r} was evaluated in no experiment (suites evaluated: "
            f"{', '.join(suites) or 'none'}); add it to eval.suites to measure {measure.key}")


def panels(record: dict[str, Any], rows: list[dict[str, Any]], measures: list[Measure]) -> list[Panel]:
    """The plot's panels: the main metric, then each measure that is not the main metric itself."""
    R, k = _protocol(rows)
    main = Measure(record["main_metric"])
    out = [Panel(f"{main.label(R, k)} (main metric)", build_cells(rows), base_cell(rows),
                 ylabel=f"{main.label(R, k)} (%)")]
    for m in measures:
        if m.key == main.key:
            continue
        out.append(Panel(m.label(R, k), build_cells(rows, m.key), base_cell(rows, m.key), _absent(m, rows),
                         ylabel=f"{m.label(R, k)} (%)"))
    return out


def _per_model(row: dict[str, Any]) -> Any:
    tasks, k = row.get("tasks"), row.get("k")
    return tasks * k if isinstance(tasks, int) and isinstance(k, int) else "?"


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}"


def _span(found: list[float] | None, signed: bool = False) -> str:
    """`` [lo, hi]`` with one decimal (signed for a delta) as the eval report writes it; `` [n/a]`` without."""
    if not found:
        return " [n/a]"
    show = _signed if signed else _fmt
    return f" [{show(found[0])}, {show(found[1])}]"


def _first(rows: list[dict[str, Any]], key: str) -> Any:
    return next((r[key] for r in rows if r.get(key) is not None), None)


def _vs_untuned(cell: Cell, delta: float | None) -> str:
    """The Δ vs untuned column: with one seed its paired delta and interval; with several the difference of
    the mean and each paired seed's delta and interval; without a paired comparison the difference alone."""
    pr = paired(cell)
    if len(cell.values) == 1 and pr.deltas:
        [(seed, found)] = pr.deltas.items()
        return f"{_signed(found if found is not None else delta)}{_span(pr.intervals.get(seed), True)}"
    if pr.deltas:
        return f"{_signed(delta)} (" + ", ".join(f"s{seed}: {_signed(d)}{_span(pr.intervals.get(seed), True)}"
                                                 for seed, d in pr.deltas.items()) + ")"
    return _signed(delta)


def render_report(record: dict[str, Any], rows: list[dict[str, Any]], cells: list[Cell], base: float | None,
                  wall_s: float | None = None, measures: list[Measure] | None = None) -> str:
    """The Markdown of ``reports/sweep.md``: the setup, a row per cell with its comparisons, a table per
    measure (``measures``: those the record names when None), a row per experiment."""
    metric = record["main_metric"]
    measures = record_measures(record) if measures is None else measures
    ok = [r for r in rows if r.get("score") is not None]
    first = ok[0] if ok else {}
    bases = [r for r in ok if r.get("base_score") is not None]
    level = _first(ok, "confidence") or 0.95
    resamples = _first(ok, "resamples") or "n/a"
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
             f"- Measures: {', '.join(f'`{m.key}`' for m in measures)}; the untuned model evaluated "
             + ("in the first experiment only (`--baseline once`)" if record.get("baseline") == "once"
                else "in every experiment" if record.get("baseline") == "every" else "as eval.models says"),
             f"- Curate-eligible trajectories: "
             + ", ".join(f"{k} {v}" for k, v in record.get("available", {}).items()),
             f"- Experiments: {len(rows)} queued, {len(ok)} with results; baseline commit "
             f"`{(record.get('baseline_rev') or '?')[:12]}`" + (f"; wall time {wall_s / 60:.1f} min" if wall_s else ""),
             f"- Untuned baseline ({first.get('base_name') or 'base'}): {_fmt(base)}"
             + (_span(_first(ok, "base_interval")) if len(bases) == 1 else "")
             + ("" if base is not None else " (not evaluated in this sweep)")]
    lines += [f"- {note}" for note in record.get("notes", [])]
    lines += ["", "## Results", "",
              f"Mean and spread (sample standard deviation over seeds) of `{metric}`. In brackets: the eval's "
              f"{level * 100:g}% intervals, a bootstrap over tasks (and over trials when k > 1) with {resamples} "
              "resamples, given per seed: the seeds retrain the model but share the eval tasks, so their "
              "intervals are not independent and are not merged into one for the mean.", "",
              "Δ vs previous size counts as significant only when it is larger than the spread over seeds, "
              "otherwise it is no significant difference; with one seed nothing is claimed. Δ vs untuned is "
              "judged by the eval's paired interval of tuned − untuned (the same tasks drawn for both models): "
              "above zero only when every seed's interval lies above zero; an interval that reaches zero is no "
              "significant difference.", "",
              f"| teachers | samples | seeds | {metric} mean | spread | per seed | Δ vs previous size | significant | "
              f"Δ vs untuned | vs untuned |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    previous: dict[str, Cell] = {}
    for cell in cells:
        prev = previous.get(cell.teachers)
        step = compare(cell, prev) if prev else Comparison(None, None, None)
        vs_base = compare(cell, None, base)
        kept = sorted(set(cell.kept))
        samples = f"{cell.size}" + (f" (kept {', '.join(map(str, kept))})" if kept and kept != [cell.size] else "")
        spans = cell.intervals or [None] * len(cell.values)
        per_seed = ", ".join(f"s{s}: {_fmt(v)}{_span(i)}" for s, v, i in zip(cell.seeds, cell.values, spans))
        mean = _fmt(cell.mean) + (_span(spans[0]) if len(cell.values) == 1 else "")
        lines.append(f"| {cell.teachers} | {samples} | {len(cell.values)} | {mean} | {_fmt(cell.spread)} | "
                     f"{per_seed} | {_signed(step.delta) if prev else '-'} | {step.label if prev else '-'} | "
                     f"{_vs_untuned(cell, vs_base.delta)} | {paired(cell).label} |")
        previous[cell.teachers] = cell
    if any(paired(c).seeds > len(paired(c).deltas) for c in cells):
        lines += ["", "A paired interval needs the untuned model evaluated in the same experiment: with "
                  "`--baseline once` only the first experiment evaluates it (`--baseline every`, the default: all do)."]
    lines += measure_sections(rows, measures)
    lines += ["", "## Experiments", "", "| experiment | teachers | size | seed | status | kept | "
              f"{metric} | Δ vs untuned (paired) | sft final loss | train tokens |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        score = _fmt(r.get("score")) + (_span(r.get("interval")) if r.get("score") is not None else "")
        pair = r.get("paired")
        vs = f"{_signed(pair.get('delta'))}{_span(pair.get('interval'), True)}" if pair else "n/a"
        lines.append(f"| {r['name']} | {r['teachers']} | {r['size']} | {r['seed']} | {r['status']} | "
                     f"{r.get('kept', 'n/a') if r.get('kept') is not None else 'n/a'} | {score} | {vs} | "
                     f"{_fmt(r.get('final_loss'), 3)} | {r.get('train_tokens') or 'n/a'} |")
    lines += ["", "`dvc exp show` lists these experiments by name; each is a child of the MLflow run "
              f"`{record['id']}` (tags `sweep.id`, `sweep.size`, `sweep.seed`, `sweep.teachers`).", ""]
    return "\n".join(lines)


def _mean_sd(cell: Cell) -> str:
    spans = cell.intervals or [None] * len(cell.values)
    if len(cell.values) == 1:
        return _fmt(cell.mean) + _span(spans[0])
    return f"{_fmt(cell.mean)} ± {_fmt(cell.spread)}"


def _per_seed(cell: Cell) -> str:
    spans = cell.intervals or [None] * len(cell.values)
    return ", ".join(f"s{s}: {_fmt(v)}{_span(i)}" for s, v, i in zip(cell.seeds, cell.values, spans))


def _base_per_seed(cell: Cell) -> str:
    """The untuned model per seed: its value in that seed's experiments (the mean and count when several)."""
    by_seed: dict[int, list[tuple[float, list[float] | None]]] = {}
    spans = cell.intervals or [None] * len(cell.values)
    for seed, value, found in zip(cell.seeds, cell.values, spans):
        by_seed.setdefault(seed, []).append((value, found))
    parts = []
    for seed, found in by_seed.items():
        if len(found) == 1:
            parts.append(f"s{seed}: {_fmt(found[0][0])}{_span(found[0][1])}")
        else:
            parts.append(f"s{seed}: {_fmt(statistics.fmean(v for v, _ in found))} ({len(found)} experiments)")
    return ", ".join(parts)


def reading(cells: list[Cell], base: Cell | None) -> str:
    """The verdict against the untuned model at the largest size of each teacher subset, and the sizes at
    which it is above zero."""
    subsets = list(dict.fromkeys(c.teachers for c in cells))
    if not subsets:
        return "no tuned result yet."
    parts = []
    for label in subsets:
        mine = [c for c in cells if c.teachers == label]
        last = mine[-1]
        pr = paired(last)
        delta = compare(last, None, base.mean if base else None).delta
        where = f"at N = {last.size}" + (f" (teachers {label})" if len(subsets) > 1 else "")
        if pr.verdict == "n/a":
            parts.append(f"{where}, tuned − untuned {_signed(delta)}: no paired interval, no verdict")
            continue
        above = [c.size for c in mine if paired(c).verdict == "above zero"]
        parts.append(f"{where}, tuned − untuned {_signed(delta)} is **{pr.verdict}** ({len(pr.intervals)} of "
                     f"{pr.seeds} seeds with a paired interval, {pr.above} above zero); above zero at "
                     + (f"N = {', '.join(map(str, above))}" if above else "no size"))
    return "; ".join(parts) + "."


def measure_sections(rows: list[dict[str, Any]], measures: list[Measure]) -> list[str]:
    """``## Measures``: per measure, a row for the untuned model (N = 0) and per (teachers, size) the mean ±
    sd over seeds, each seed's value, and the paired verdict against the untuned model; a reading line."""
    R, k = _protocol(rows)
    lines = ["", "## Measures", "",
             "Does the tuned model beat the untuned one, and from how many samples? Per measure: N = 0 is the "
             "untuned model (mean ± sd over the experiments that evaluated it), then each size with the mean ± "
             "sd over seeds and each seed's value (in brackets its 95% interval where the eval gives one: a "
             "suite's scores have none). \"vs untuned\" is the eval's paired interval of tuned − untuned per "
             "seed: above zero only when every paired seed's interval lies above zero, no significant difference "
             "when any reaches zero; \"paired seeds\" says how many seeds had a paired interval (the untuned "
             "model evaluated in the same experiment) and how many of those lie above zero. Rates are 0-100."]
    for m in measures:
        source = (f"`suites.{m.suite}.*.{m.metric}`, paired: `suite_comparisons`" if m.suite
                  else f"`headline.*.{m.metric}`, paired: `comparisons`")
        lines += ["", f"### {m.label(R, k)} (`{m.key}`)", "", f"From {source} of metrics/eval.json.", ""]
        absent = _absent(m, rows)
        if absent:
            lines.append(f"No numbers: {absent}.")
            continue
        cells = build_cells(rows, m.key)
        base = base_cell(rows, m.key)
        lines += ["| teachers | samples | seeds | mean ± sd | per seed | Δ vs untuned (paired, per seed) | "
                  "vs untuned | paired seeds |", "|---|---|---|---|---|---|---|---|"]
        if base is not None:
            lines.append(f"| {base.teachers} | 0 | {len(base.values)} experiment{'s' if len(base.values) > 1 else ''} | "
                         f"{_mean_sd(base)} | {_base_per_seed(base)} | - | (reference) | - |")
        else:
            lines.append("| untuned | 0 | 0 | n/a (no experiment has a value of the untuned model) | - | - | - | - |")
        for cell in cells:
            pr = paired(cell)
            delta = compare(cell, None, base.mean if base else None).delta
            lines.append(f"| {cell.teachers} | {cell.size} | {len(cell.values)} | {_mean_sd(cell)} | "
                         f"{_per_seed(cell)} | {_vs_untuned(cell, delta)} | {pr.verdict} | {pr.count} |")
        lines += ["", f"Reading: {reading(cells, base)}"]
    return lines


def _wall_from_mlflow(record: dict[str, Any], rows: list[dict[str, Any]]) -> float | None:
    """Seconds from the sweep run's start to the end of its last stage run, once no experiment is waiting
    (for a sweep whose queue was started and waited on by someone else, e.g. ``--no-wait``)."""
    if any(r["status"] in WAITING for r in rows):
        return None
    try:
        store = RunStore(record["tracking_uri"], record["experiment_id"])
        return store.seconds_to_last_end(record["run_id"], "sweep.id", record["id"], ("sweep", "sweep-point"))
    except Exception:
        return None


def _log_report(record: dict[str, Any], rows: list[dict[str, Any]], cells: list[Cell], base: float | None,
                root: Path, measures: list[Measure] = ()) -> None:
    """Each point's numbers to its run, the cells and the files to the sweep run; close what has ended."""
    try:
        store = RunStore(record["tracking_uri"], record["experiment_id"])
        metric = record["main_metric"]
        for r in rows:
            if not r.get("run_id"):
                continue
            if r["status"] in DONE and store.is_running(r["run_id"]):
                store.terminate(r["run_id"], r["status"] == "Success")
            lo, hi = r.get("interval") or (None, None)
            per_measure = {f"eval.{m.slug}": (r.get("measures") or {}).get(m.key, {}).get("score") for m in measures}
            store.log_metrics(r["run_id"], {f"eval.{metric}": r.get("score"), f"eval.{metric}.lo": lo,
                                            f"eval.{metric}.hi": hi, "curate.kept": r.get("kept"),
                                            "sft.final_loss": r.get("final_loss"),
                                            f"eval.base.{metric}": r.get("base_score"), **per_measure})
        run_id = record["run_id"]
        summary: dict[str, float | None] = {}
        for prefix, key in [("", None)] + [(f"{m.slug}.", m.key) for m in measures]:
            for c in build_cells(rows, key) if key else cells:
                name = f"{prefix}{c.teachers.replace('+', '_')}.n{c.size}"  # MLflow names take no '+'
                summary.update({f"{name}.mean": c.mean, f"{name}.spread": c.spread})
            if key:
                found = base_cell(rows, key)
                summary[f"{prefix}base"] = found.mean if found else None
        store.log_metrics(run_id, {**summary, f"base.{metric}": base})
        store.log_files(run_id, [root / REPORT, root / PLOT])
        if any(r["status"] in WAITING for r in rows):
            return  # a report of a sweep still running: the run stays open for the final one
        failed = sum(1 for r in rows if r["status"] != "Success")
        store.set_tag(run_id, "sweep.failed", str(failed))
        store.terminate(run_id, not failed)
    except Exception as exc:  # the files are written; the record is what failed
        log.warning("MLflow logging of the sweep report failed (%s); reports/sweep.md and plots/sweep.png are "
                    "written", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
