"""95% intervals for the eval scores: a bootstrap over tasks (and over trials when k > 1), and the paired
base-vs-tuned difference.

    interval(outcomes, ftfc, resamples=1000, seed=0)                     # (lo, hi) on 0-100, or None
    paired_delta(base, tuned, agencybench_score, resamples=1000, seed=0)  # {"delta", "interval", "significant"}

The readings, and why:

- **Tasks are the sampled unit.** A benchmark is a sample of tasks; a rerun on other tasks of the same kind
  is the repetition a reader has in mind. Each resample draws as many tasks as there are, with
  replacement (a task drawn twice counts twice).
- **Trials are resampled inside each drawn task when it has more than one** (a two-stage bootstrap), so
  the interval also covers the sampling noise of the model itself; with k = 1 there is nothing to draw.
- **Percentile intervals** (the 2.5th and 97.5th percentiles of the resampled scores): no normality is
  assumed, and a score that cannot leave 0-100 keeps an interval inside 0-100.
- **Paired differences** draw the same tasks for both models in every resample, so what the tasks have
  in common (their difficulty) cancels; a tuned model is better only when the interval of
  tuned − base lies above zero.
- **Seeded**: the same outcomes and seed give the same interval, so ``metrics/eval.json`` stays a function
  of its inputs.

Infra-error trials are left out before resampling, as they are from every score. A metric that is None on
a resample (RC@R when no resampled task completed a query) is left out of that resample's percentiles; when
fewer than half the resamples have a value the interval is None.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace
from typing import Any, Callable, Sequence

from pipelines.evaluation.metrics import (EpisodeOutcome, agencybench_average, ftfc, remaining_chances, scored,
                                          success_rate)

Metric = Callable[[Sequence[EpisodeOutcome]], "float | None"]
LEVEL = 0.95


def agencybench_score(outcomes: Sequence[EpisodeOutcome]) -> float | None:
    """The AgencyBench average of a set of outcomes, as one metric function."""
    return agencybench_average(ftfc(outcomes), success_rate(outcomes), remaining_chances(outcomes))


def _tasks(outcomes: Sequence[EpisodeOutcome]) -> dict[str, list[EpisodeOutcome]]:
    groups: dict[str, list[EpisodeOutcome]] = defaultdict(list)
    for outcome in scored(outcomes):
        groups[outcome.task_id].append(outcome)
    return dict(sorted(groups.items()))


def _draw(group: list[EpisodeOutcome], rng: random.Random, copy: int) -> list[EpisodeOutcome]:
    """One drawn task: its trials resampled (when more than one), renamed so a task drawn twice counts twice."""
    trials = group if len(group) == 1 else [rng.choice(group) for _ in group]
    return [replace(o, task_id=f"{o.task_id}#{copy}", trial=i) for i, o in enumerate(trials)]


def _percentiles(values: list[float], resamples: int, level: float) -> tuple[float, float] | None:
    if len(values) < resamples / 2:
        return None
    values = sorted(values)
    tail = (1 - level) / 2

    def at(q: float) -> float:  # linear interpolation between order statistics
        pos = q * (len(values) - 1)
        low = int(pos)
        high = min(low + 1, len(values) - 1)
        return values[low] + (values[high] - values[low]) * (pos - low)

    return (round(at(tail), 4), round(at(1 - tail), 4))


def interval(outcomes: Sequence[EpisodeOutcome], metric: Metric, *, resamples: int = 1000, seed: int = 0,
             level: float = LEVEL) -> tuple[float, float] | None:
    """The bootstrap percentile interval of ``metric`` over one model's outcomes; None without tasks."""
    tasks = list(_tasks(outcomes).values())
    if not tasks:
        return None
    rng = random.Random(seed)
    values = []
    for _ in range(resamples):
        sample = [o for copy in range(len(tasks)) for o in _draw(rng.choice(tasks), rng, copy)]
        value = metric(sample)
        if value is not None:
            values.append(value)
    return _percentiles(values, resamples, level)


def paired_delta(base: Sequence[EpisodeOutcome], tuned: Sequence[EpisodeOutcome], metric: Metric, *,
                 resamples: int = 1000, seed: int = 0, level: float = LEVEL) -> dict[str, Any]:
    """``metric(tuned) - metric(base)`` with its paired bootstrap interval over the tasks both were scored on.

    Returns ``{"delta", "interval", "significant", "tasks"}``: ``significant`` is True when the interval lies
    above zero, False otherwise (below zero, or straddling it), None when there is no interval.
    """
    by_base, by_tuned = _tasks(base), _tasks(tuned)
    shared = sorted(set(by_base) & set(by_tuned))
    left = [o for t in shared for o in by_base[t]]
    right = [o for t in shared for o in by_tuned[t]]
    a, b = metric(left), metric(right)
    delta = None if a is None or b is None else b - a
    rng = random.Random(seed)
    values = []
    for _ in range(resamples if shared else 0):
        picks = [rng.choice(shared) for _ in shared]
        sample_a = [o for copy, t in enumerate(picks) for o in _draw(by_base[t], rng, copy)]
        sample_b = [o for copy, t in enumerate(picks) for o in _draw(by_tuned[t], rng, copy)]
        va, vb = metric(sample_a), metric(sample_b)
        if va is not None and vb is not None:
            values.append(vb - va)
    found = _percentiles(values, resamples, level) if shared else None
    return {"delta": None if delta is None else round(delta, 4), "interval": list(found) if found else None,
            "significant": None if found is None else found[0] > 0, "tasks": len(shared)}
