"""What ``metrics/eval.json`` holds: the metrics per model, category and suite, the headline numbers with
their 95% intervals and their deltas against the baseline (with paired intervals), and which tuned model
(if any) is the new champion: one whose paired interval on the main metric lies above zero."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from pipelines.evaluation.config import EvalParams
from pipelines.evaluation.metrics import (EpisodeOutcome, finish_rate, first_call_validity, ftfc, mean_seconds,
                                          metrics_block, pass_at_k, pass_hat_k, remaining_chances, success_rate,
                                          summarize, tool_call_validity)
from pipelines.evaluation.suites.common import EvalTask
from pipelines.evaluation.trial import Trial
from pipelines.evaluation.uncertainty import agencybench_score, interval, paired_delta

#: The numbers compared model against model, in report order (rates on 0-100, then costs).
HEADLINE = ("ftfc", "sr_at_r", "rc_at_r", "agencybench_average", "pass_at_k", "pass_hat_k", "tool_call_validity",
            "first_call_validity", "finish_rate", "infra_error_rate", "mean_steps", "mean_tokens")
RATES = HEADLINE[:9]  # the 0-100 scores drawn in metrics.png
#: The headline numbers given with a 95% interval (every score the champion may be decided on).
INTERVALS = RATES


def metric_function(name: str, k: int) -> Callable[[Sequence[EpisodeOutcome]], float | None]:
    """The function that computes headline metric ``name`` from one model's outcomes."""
    simple = {"ftfc": ftfc, "sr_at_r": success_rate, "rc_at_r": remaining_chances,
              "agencybench_average": agencybench_score, "tool_call_validity": tool_call_validity,
              "first_call_validity": first_call_validity, "finish_rate": finish_rate}
    if name in simple:
        return simple[name]
    if name == "pass_at_k":
        return lambda outcomes: pass_at_k(outcomes, k)
    if name == "pass_hat_k":
        return lambda outcomes: pass_hat_k(outcomes, k)
    raise ValueError(f"no interval for metric {name!r}")


def intervals(outcomes: list[EpisodeOutcome], names: list[str], settings: EvalParams) -> dict[str, dict[str, Any]]:
    """``{model: {metric: [lo, hi] or None}}``: the bootstrap interval of each headline score."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        mine = [o for o in outcomes if o.model == name]
        out[name] = {}
        for metric in INTERVALS:
            found = interval(mine, metric_function(metric, settings.k), resamples=settings.bootstrap)
            out[name][metric] = list(found) if found else None
    return out


def comparisons(outcomes: list[EpisodeOutcome], names: list[str], settings: EvalParams) -> dict[str, dict[str, Any]]:
    """``{model: {metric: paired delta}}`` for every model against the baseline ``names[0]``
    (:func:`pipelines.evaluation.uncertainty.paired_delta`)."""
    base = [o for o in outcomes if o.model == names[0]]
    return {name: {metric: paired_delta(base, [o for o in outcomes if o.model == name],
                                        metric_function(metric, settings.k), resamples=settings.bootstrap)
                   for metric in INTERVALS}
            for name in names[1:]}


def eval_metrics(trials: list[Trial], tasks: list[EvalTask], settings: EvalParams, names: list[str]) -> dict[str, Any]:
    """The content of ``metrics/eval.json`` (an :class:`~pipelines.core.schema.EvalMetrics`); ``names[0]`` is
    the baseline, the champion candidates are the models whose ``eval.models`` entry has an ``adapter``.
    The champion is decided; what to register (``register_as``) is set by the eval stage."""
    outcomes = [t.outcome for t in trials]
    summary = summarize(outcomes, settings.k)
    baseline = names[0]
    present = [n for n in names if n in summary["models"]]
    numbers, deltas = headline(summary, baseline)
    entries = {e.name: e for e in settings.models}
    candidates = [n for n in names[1:] if n in entries and entries[n].adapter]
    paired = comparisons(outcomes, present, settings) if present and present[0] == baseline else {}
    return {
        **summary,
        "baseline": baseline, "main_metric": settings.main_metric,
        "headline": numbers, "deltas": deltas,
        "intervals": intervals(outcomes, present, settings), "comparisons": paired,
        "confidence": 0.95, "bootstrap_resamples": settings.bootstrap,
        "suites": by_suite(trials, settings.k),
        "suite_comparisons": suite_comparisons(trials, present, settings) if paired else {},
        "champion": decide_champion(numbers, baseline, candidates, settings.main_metric, paired),
        "tasks": len(tasks), "trials": len(trials), "R": settings.rounds,
        "sampling": settings.sampling.model_dump(),
    }


def headline(summary: dict[str, Any], baseline: str) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(per-model headline numbers, per-model deltas ``model - baseline``); a delta is None where either is."""
    numbers = {name: {m: block["overall"][m] for m in HEADLINE} for name, block in summary["models"].items()}
    base = numbers.get(baseline, {})
    deltas = {name: {m: _delta(values[m], base.get(m)) for m in HEADLINE}
              for name, values in numbers.items() if name != baseline}
    return numbers, deltas


def _delta(value: float | None, reference: float | None) -> float | None:
    return None if value is None or reference is None else value - reference


def by_suite(trials: list[Trial], k: int) -> dict[str, dict[str, Any]]:
    """``{suite: {model: metrics block}}``: the scores of each suite on its own."""
    out: dict[str, dict[str, Any]] = {}
    for suite in sorted({t.task.suite for t in trials}):
        mine = [t.outcome for t in trials if t.task.suite == suite]
        out[suite] = {model: metrics_block([o for o in mine if o.model == model], k)
                      for model in sorted({o.model for o in mine})}
    return out


def suite_comparisons(trials: list[Trial], names: list[str], settings: EvalParams) -> dict[str, dict[str, Any]]:
    """``{suite: {model: {metric: paired delta}}}``: :func:`comparisons` within each suite on its own (the
    tasks of that suite resampled), for suites that more than one model ran."""
    out: dict[str, dict[str, Any]] = {}
    for suite in sorted({t.task.suite for t in trials}):
        mine = [t.outcome for t in trials if t.task.suite == suite]
        if len({o.model for o in mine}) > 1:
            out[suite] = comparisons(mine, names, settings)
    return out


def decide_champion(numbers: dict[str, dict[str, Any]], baseline: str, candidates: list[str],
                    metric: str, paired: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Which candidate (a model with an SFT adapter) is better than the baseline on ``metric``: the one whose
    paired 95% interval of ``candidate - baseline`` lies above zero; of several, the largest difference wins.

    A difference whose interval reaches zero or below is "no significant difference", however large the
    point estimate; a candidate without an interval (nothing scored) cannot win.
    """
    reference = numbers.get(baseline, {}).get(metric)
    scores = {name: numbers.get(name, {}).get(metric) for name in candidates}
    tests = {name: (paired or {}).get(name, {}).get(metric) or {} for name in candidates}
    winners = [n for n in candidates if tests[n].get("significant") is True]
    best = max(winners, key=lambda n: tests[n]["delta"]) if winners else None
    return {"metric": metric, "baseline": baseline, "baseline_value": reference, "candidates": scores,
            "differences": {n: {"delta": tests[n].get("delta"), "interval": tests[n].get("interval")}
                            for n in candidates},
            "winner": best, "beats_baseline": best is not None, "register_as": None}


def eval_timings(trials: list[Trial], wall_s: float) -> dict[str, Any]:
    """The run-dependent figures of an evaluation (for ``tracker.record_timings``, never an output file):
    wall seconds, mean seconds per scored trial of each model, and each trial's seconds by episode key."""
    models = sorted({t.outcome.model for t in trials})
    return {
        "wall_seconds": round(wall_s, 2),
        "mean_seconds": {m: mean_seconds([t.outcome for t in trials if t.outcome.model == m]) for m in models},
        "trials": [{"episode_key": t.record["meta"].get("episode_key"), "model": t.outcome.model,
                    "task_id": t.task.id, "trial": t.outcome.trial, "episode_s": t.outcome.seconds,
                    "total_s": round(t.seconds, 3)} for t in trials],
    }
