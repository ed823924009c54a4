"""What ``metrics/eval.json`` holds: the metrics per model, category and suite, the headline numbers with
their deltas against the baseline, and which tuned model (if any) is the new champion."""

from __future__ import annotations

from typing import Any

from pipelines.evaluation.config import EvalParams
from pipelines.evaluation.metrics import mean_seconds, metrics_block, summarize
from pipelines.evaluation.suites.common import EvalTask
from pipelines.evaluation.trial import Trial

#: The numbers compared model against model, in report order (rates on 0-100, then costs).
HEADLINE = ("ftfc", "sr_at_r", "rc_at_r", "agencybench_average", "pass_at_k", "pass_hat_k", "tool_call_validity",
            "infra_error_rate", "mean_steps", "mean_tokens")
RATES = HEADLINE[:7]  # the 0-100 scores drawn in metrics.png


def eval_metrics(trials: list[Trial], tasks: list[EvalTask], settings: EvalParams, names: list[str]) -> dict[str, Any]:
    """The content of ``metrics/eval.json`` (an :class:`~pipelines.core.schema.EvalMetrics`); ``names[0]`` is
    the baseline, the champion candidates are the models whose ``eval.models`` entry has an ``adapter``.
    The champion is decided, not yet registered (``registered`` is None)."""
    summary = summarize([t.outcome for t in trials], settings.k)
    baseline = names[0]
    numbers, deltas = headline(summary, baseline)
    entries = {e.name: e for e in settings.models}
    candidates = [n for n in names[1:] if n in entries and entries[n].adapter]
    return {
        **summary,
        "baseline": baseline, "main_metric": settings.main_metric,
        "headline": numbers, "deltas": deltas,
        "suites": by_suite(trials, settings.k),
        "champion": decide_champion(numbers, baseline, candidates, settings.main_metric),
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


def decide_champion(numbers: dict[str, dict[str, Any]], baseline: str, candidates: list[str],
                    metric: str) -> dict[str, Any]:
    """Which candidate (a model with an SFT adapter) beats the baseline on ``metric``, strictly; the best one wins.

    A candidate or baseline without a value (nothing scored) cannot win.
    """
    reference = numbers.get(baseline, {}).get(metric)
    scores = {name: numbers.get(name, {}).get(metric) for name in candidates}
    winners = [n for n, v in scores.items() if v is not None and reference is not None and v > reference]
    best = max(winners, key=lambda n: scores[n]) if winners else None
    return {"metric": metric, "baseline": baseline, "baseline_value": reference, "candidates": scores,
            "winner": best, "beats_baseline": best is not None, "registered": None}


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
