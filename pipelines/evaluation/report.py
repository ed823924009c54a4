"""``reports/eval.md`` and ``plots/eval/``: the protocol, the models side by side with deltas, per-category
and per-suite tables, the champion decision; bar charts of the scores. Built from ``metrics/eval.json``'s
content only, so they are functions of the inputs like it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from pipelines.core.io import atomic_write_text
from pipelines.evaluation.config import EvalParams
from pipelines.evaluation.suites.common import EvalTask
from pipelines.evaluation.summary import HEADLINE, RATES


def labels(R: int, k: int) -> dict[str, str]:
    """How each headline metric is named in the report and plots."""
    return {"ftfc": "FTFC", "sr_at_r": f"SR@{R}", "rc_at_r": f"RC@{R}", "agencybench_average": "AgencyBench average",
            "pass_at_k": f"pass@{k}", "pass_hat_k": f"pass^{k}", "tool_call_validity": "tool-call validity",
            "first_call_validity": "first-call validity", "finish_rate": "finish rate",
            "infra_error_rate": "infra-error rate", "mean_steps": "steps / trial", "mean_tokens": "tokens / trial"}


def fmt(value: float | None, signed: bool = False) -> str:
    """A score with one decimal (``+`` sign for a delta), or ``n/a``."""
    if value is None:
        return "n/a"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def write_report(path: Path, result: dict[str, Any], settings: EvalParams, tasks: list[EvalTask],
                 model_info: Mapping[str, dict[str, Any]]) -> None:
    """``reports/eval.md`` from ``result`` (what ``metrics/eval.json`` holds)."""
    names = list(result["headline"])
    names_labels = labels(settings.rounds, settings.k)
    lines = [f"# Evaluation: {' vs '.join(names)}", "", "## Protocol", ""]
    lines += _protocol(result, settings, tasks, model_info)
    lines += ["", "## Results", ""] + _results(result, names_labels)
    lines += ["", "Rates are percentages (0-100).", "", "## By category", ""] + _by_category(result, names_labels)
    lines += ["", "## By suite", ""] + _by_suite(result, names_labels)
    lines += ["", "## Champion", "", _champion_sentence(result["champion"], names_labels), ""]
    atomic_write_text(path, "\n".join(lines))


def _protocol(result: dict[str, Any], settings: EvalParams, tasks: list[EvalTask],
              model_info: Mapping[str, dict[str, Any]]) -> list[str]:
    lines = []
    for name in result["headline"]:
        info = model_info.get(name, {})
        what = ", ".join(f"{k} {v}" for k, v in info.items() if v is not None) or name
        lines.append(f"- Model `{name}`{' (baseline)' if name == result['baseline'] else ''}: {what}")
    suites: dict[str, list[EvalTask]] = {}
    for task in tasks:
        suites.setdefault(task.suite, []).append(task)
    s, limits = settings.sampling, settings.limits
    return lines + [
        "- Suites: " + ", ".join(f"{suite} ({_count(len(ts), 'task')}, "
                                 f"{_count(sum(len(t.subtasks) for t in ts), 'subtask')})"
                                 for suite, ts in suites.items()) + f"; {_count(len(tasks), 'task')} in all",
        f"- Trials: k = {settings.k} per model and task; {result['trials']} trials in all",
        f"- Rounds: R = {settings.rounds} per subtask (the first response, then up to {settings.rounds - 1} rounds of "
        f"simulated-user feedback, policy `{settings.feedback}`: the unmet requirements in the task's public words, "
        "never a hidden check or an answer); a subtask still failing after R rounds ends the task",
        "- A task's subtasks (queries) run in order in one workspace and one conversation; FTFC counts requirements "
        "met by the first response to each query, SR@R queries completed within R rounds, RC@R the unused rounds "
        "of completed queries; queries never reached count as failed; per task first, then over tasks",
        f"- Limits per subtask: {limits.max_steps} steps, {limits.max_tokens} tokens, "
        f"{limits.max_seconds:g} s, {limits.max_format_errors} consecutive format errors",
        f"- Sampling: max_tokens {s.max_tokens}, temperature {s.temperature:g}, top_p {s.top_p:g}, "
        f"seed {s.seed}{' + trial index' if s.seed is not None else ''}",
        f"- Sandbox: {settings.sandbox}, {settings.command_timeout_s:g} s per command, {settings.memory_mb} MB",
        "- Trials that end in an infrastructure error are left out of every score and counted in the infra-error rate",
    ]


def fmt_interval(found: list[float] | None, signed: bool = False) -> str:
    """``[lo, hi]`` with one decimal, or an empty string when there is no interval."""
    if not found:
        return ""
    return f" [{fmt(found[0], signed)}, {fmt(found[1], signed)}]"


def _results(result: dict[str, Any], names_labels: dict[str, str]) -> list[str]:
    names, baseline = list(result["headline"]), result["baseline"]
    others = [n for n in names if n != baseline]
    lines = ["| metric | " + " | ".join(names) + "".join(f" | Δ {o} − {baseline}" for o in others) + " |",
             "|---" * (1 + len(names) + len(others)) + "|"]
    spans, paired = result.get("intervals", {}), result.get("comparisons", {})
    for metric in HEADLINE:
        row = [names_labels[metric]] + [fmt(result["headline"][n][metric])
                                        + fmt_interval(spans.get(n, {}).get(metric)) for n in names]
        row += [fmt(result["deltas"][o][metric], signed=True)
                + fmt_interval((paired.get(o, {}).get(metric) or {}).get("interval"), signed=True) for o in others]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"In brackets: 95% intervals, a bootstrap over tasks (and over trials when k > 1) with "
              f"{result.get('bootstrap_resamples', 'n/a')} resamples; deltas are paired (the same tasks drawn "
              "for both models). A delta whose interval reaches zero is no significant difference."]
    return lines


def _by_category(result: dict[str, Any], names_labels: dict[str, str]) -> list[str]:
    names = list(result["headline"])
    lines = ["| category | tasks | " + " | ".join(f"{n} {names_labels['sr_at_r']}" for n in names) + " | "
             + " | ".join(f"{n} FTFC" for n in names) + " |", "|---" * (2 + 2 * len(names)) + "|"]
    for category in _categories(result):
        blocks = [result["models"][n]["categories"].get(category, {}) for n in names]
        count = max(b.get("tasks", 0) for b in blocks)
        lines.append("| " + " | ".join([category, str(count)] + [fmt(b.get("sr_at_r")) for b in blocks]
                                       + [fmt(b.get("ftfc")) for b in blocks]) + " |")
    return lines


def _by_suite(result: dict[str, Any], names_labels: dict[str, str]) -> list[str]:
    """Per suite: each model's SR@R and FTFC, and each compared model's paired FTFC delta (its 95% interval)."""
    names = list(result["headline"])
    paired = result.get("suite_comparisons") or {}
    compared = [n for n in names if any(n in found for found in paired.values())]
    lines = ["| suite | " + " | ".join(f"{n} {names_labels['sr_at_r']}" for n in names) + " | "
             + " | ".join(f"{n} FTFC" for n in names)
             + "".join(f" | {n} − {result.get('baseline')} FTFC (paired)" for n in compared) + " |",
             "|---" * (1 + 2 * len(names) + len(compared)) + "|"]
    for suite, blocks in result["suites"].items():
        deltas = []
        for n in compared:
            found = ((paired.get(suite) or {}).get(n) or {}).get("ftfc") or {}
            deltas.append(f"{fmt(found.get('delta'), signed=True)}{fmt_interval(found.get('interval'), True)}")
        lines.append("| " + " | ".join([suite] + [fmt(blocks.get(n, {}).get("sr_at_r")) for n in names]
                                       + [fmt(blocks.get(n, {}).get("ftfc")) for n in names] + deltas) + " |")
    return lines


def _categories(result: dict[str, Any]) -> list[str]:
    return sorted({c for block in result["models"].values() for c in block["categories"]})


def _champion_sentence(champion: dict[str, Any], names_labels: dict[str, str]) -> str:
    metric = names_labels.get(champion["metric"], champion["metric"])
    base, ref = champion["baseline"], fmt(champion["baseline_value"])
    if not champion["candidates"]:
        return f"No model with an SFT adapter was evaluated; nothing to register (baseline `{base}`)."
    differences = champion.get("differences") or {}

    def difference(name: str) -> str:
        found = differences.get(name) or {}
        return f"Δ {fmt(found.get('delta'), signed=True)}, 95% interval{fmt_interval(found.get('interval'), True) or ' n/a'}"

    if not champion["beats_baseline"]:
        scores = ", ".join(f"`{n}` {fmt(v)} ({difference(n)})" for n, v in champion["candidates"].items())
        return (f"No significant difference: {metric} {scores} against `{base}` {ref}. "
                "Nothing was registered.")
    winner = champion["winner"]
    text = (f"`{winner}` beats `{base}` on {metric}: {fmt(champion['candidates'][winner])} against {ref} "
            f"({difference(winner)}, above zero).")
    reg = champion.get("register_as")
    if reg:
        uri = f"models:/{reg['name']}@{reg['alias']}"
        return text + (f" Its SFT output is registered as MLflow model `{reg['name']}` with alias `{reg['alias']}` "
                       f"when the run is tracked (`mlflow.pyfunc.load_model(\"{uri}\")`; the version is the eval "
                       "run's tag `registry.version`).")
    why = champion.get("not_registered") or "the MLflow registry was not available"
    return text + f" Not registered: {why}."


def write_plots(directory: Path, result: dict[str, Any], settings: EvalParams) -> None:
    """``metrics.png`` (grouped bars of the 0-100 scores per model) and ``categories.png`` (SR@R per category),
    and the same numbers as DVC plot data (:func:`write_plot_data`)."""
    write_plot_data(directory, result, settings)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    names_labels = labels(settings.rounds, settings.k)
    names = list(result["headline"])
    _bars(plt, directory / "metrics.png", [names_labels[m] for m in RATES],
          {n: [result["headline"][n][m] for m in RATES] for n in names},
          title="Agentic evaluation", ylabel="score (0-100)")
    categories = _categories(result)
    sr = names_labels["sr_at_r"]
    _bars(plt, directory / "categories.png", categories,
          {n: [result["models"][n]["categories"].get(c, {}).get("sr_at_r") for c in categories] for n in names},
          title=f"{sr} per category", ylabel=f"{sr} (0-100)")


METRICS_CSV = "metrics.csv"
CATEGORIES_CSV = "categories.csv"
CATEGORY_METRICS = ("sr_at_r", "ftfc", "agencybench_average")


def write_plot_data(directory: Path, result: dict[str, Any], settings: EvalParams) -> None:
    """The numbers behind the PNGs as CSV, for ``dvc plots show`` / ``dvc plots diff`` across experiments.

    ``metrics.csv``: one row per (model, 0-100 score) with its 95% interval (``lo``, ``hi``; empty when there
    is none); ``categories.csv``: one row per (model, category) with its task count and SR@R, FTFC and
    average. ``label`` (model and metric, or model and category) is the bar's name in dvc.yaml's
    ``bar_horizontal`` template. Written from ``result`` only, so a function of the inputs like it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    names_labels = labels(settings.rounds, settings.k)
    spans = result.get("intervals", {})
    rows = [["model", "metric", "label", "value", "lo", "hi"]]
    for name in result["headline"]:
        for metric in RATES:
            span = spans.get(name, {}).get(metric) or [None, None]
            rows.append([name, metric, f"{name}: {names_labels[metric]}", _cell(result["headline"][name][metric]),
                         _cell(span[0]), _cell(span[1])])
    _write_csv(directory / METRICS_CSV, rows)
    rows = [["model", "category", "label", "tasks", *CATEGORY_METRICS]]
    for name in result["headline"]:
        for category in _categories(result):
            block = result["models"].get(name, {}).get("categories", {}).get(category)
            if block is None:
                continue
            rows.append([name, category, f"{name}: {category}", str(block.get("tasks", "")),
                         *(_cell(block.get(m)) for m in CATEGORY_METRICS)])
    _write_csv(directory / CATEGORIES_CSV, rows)


def _cell(value: float | None) -> str:
    return "" if value is None else f"{float(value):.4f}"


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _bars(plt, path: Path, groups: list[str], series: dict[str, list[float | None]], *, title: str,
          ylabel: str) -> None:
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(groups) + 2), 4))
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        heights = [math.nan if v is None else v for v in values]
        bars = ax.bar(xs, heights, width, label=name)
        for bar, value in zip(bars, values):
            ax.annotate("n/a" if value is None else f"{value:.0f}", (bar.get_x() + bar.get_width() / 2,
                        0 if value is None else value), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right")
    ax.set(ylim=(0, 110), ylabel=ylabel, title=title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
