"""Eval metrics: pure functions over per-episode outcomes.

    outcomes = [EpisodeOutcome("t1", "base", 0, "algorithm", 3, 2, True, 2, 3), ...]
    summarize(outcomes, k=4)["models"]["base"]["overall"]["sr_at_r"]     # 0-100

One :class:`EpisodeOutcome` is one trial of one model on one task: the task has ``subtasks_total``
requirements (AgencyBench: its subtasks), the agent gets up to ``max_rounds`` rounds (R) of feedback.
Conventions shared by every metric below:

- Episodes with ``infra_error`` (the harness, sandbox, endpoint or judge broke) are left out of every
  score and only counted in :func:`infra_error_rate`: they say nothing about the model.
- A "task" is a (model, task id) pair; per-task means come first and are then averaged over tasks, so a
  task with an infra-errored trial weighs as much as one without.
- Rates are percentages on 0-100; means of steps, tokens and seconds are in their own units.
- A metric with nothing to average over (no scored episode, no success, no tool call) is None.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from statistics import fmean
from typing import Any, Callable, Iterable, Sequence


@dataclass(frozen=True)
class EpisodeOutcome:
    """One trial of one model on one task, reduced to what the metrics need.

    ``completed``: every requirement was met within ``max_rounds`` rounds. ``rounds_used``: the rounds
    the episode ran (1 = the agent's first answer, before any feedback).
    """

    task_id: str
    model: str
    trial: int
    category: str
    subtasks_total: int
    subtasks_met_first_round: int
    completed: bool
    rounds_used: int
    max_rounds: int
    infra_error: bool = False
    tool_calls: int = 0
    invalid_tool_calls: int = 0
    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        where = f"outcome {self.model}/{self.task_id}/trial {self.trial}"
        if self.subtasks_total < 1:
            raise ValueError(f"{where}: subtasks_total must be at least 1, got {self.subtasks_total}")
        if not 0 <= self.subtasks_met_first_round <= self.subtasks_total:
            raise ValueError(f"{where}: subtasks_met_first_round must lie in 0..{self.subtasks_total}, "
                             f"got {self.subtasks_met_first_round}")
        if self.max_rounds < 1:
            raise ValueError(f"{where}: max_rounds must be at least 1, got {self.max_rounds}")
        if not 0 <= self.rounds_used <= self.max_rounds:
            raise ValueError(f"{where}: rounds_used must lie in 0..{self.max_rounds}, got {self.rounds_used}")
        if self.completed and self.rounds_used < 1:
            raise ValueError(f"{where}: a completed episode used at least one round")
        if not 0 <= self.invalid_tool_calls <= self.tool_calls:
            raise ValueError(f"{where}: invalid_tool_calls ({self.invalid_tool_calls}) must lie in "
                             f"0..tool_calls ({self.tool_calls})")

    @property
    def task_key(self) -> tuple[str, str]:
        return (self.model, self.task_id)


def scored(outcomes: Iterable[EpisodeOutcome]) -> list[EpisodeOutcome]:
    """The episodes that count towards scores: all but the infra errors."""
    return [o for o in outcomes if not o.infra_error]


def _by_task(outcomes: Iterable[EpisodeOutcome]) -> dict[tuple[str, str], list[EpisodeOutcome]]:
    groups: dict[tuple[str, str], list[EpisodeOutcome]] = defaultdict(list)
    for outcome in scored(outcomes):
        groups[outcome.task_key].append(outcome)
    return groups


def _task_mean(outcomes: Iterable[EpisodeOutcome], value: Callable[[EpisodeOutcome], float]) -> float | None:
    """Mean over tasks of the per-task mean of ``value``, on 0-100; None without scored episodes."""
    per_task = [fmean(value(o) for o in group) for group in _by_task(outcomes).values()]
    return 100 * fmean(per_task) if per_task else None


def ftfc(outcomes: Iterable[EpisodeOutcome]) -> float | None:
    """First-turn functional completeness: the share of a task's requirements met after the first round,
    averaged over its trials and then over tasks (0-100)."""
    return _task_mean(outcomes, lambda o: o.subtasks_met_first_round / o.subtasks_total)


def success_rate(outcomes: Iterable[EpisodeOutcome]) -> float | None:
    """SR@R: the share of tasks fully completed (every requirement met) within R rounds, averaged over
    trials and then over tasks (0-100)."""
    return _task_mean(outcomes, lambda o: float(o.completed))


def remaining_chances(outcomes: Iterable[EpisodeOutcome]) -> float | None:
    """RC@R: over successful episodes, the mean share of feedback rounds left unused, (R - rounds_used) / (R - 1),
    scaled to 0-100 (100 = solved in the first round, 0 = solved in the last one).

    With R = 1 there are no feedback rounds to use, and every success is a first-round success: it scores
    100. None when no episode succeeded.
    """
    wins = [o for o in scored(outcomes) if o.completed]
    if not wins:
        return None
    return 100 * fmean(1.0 if o.max_rounds == 1 else (o.max_rounds - o.rounds_used) / (o.max_rounds - 1)
                       for o in wins)


def agencybench_average(ftfc_score: float | None, sr_score: float | None, rc_score: float | None) -> float | None:
    """The AgencyBench headline number: the mean of FTFC, SR@R and RC@R (each on 0-100); RC@R counts as 0
    when nothing succeeded, and the average is None only when there was nothing to score."""
    if ftfc_score is None or sr_score is None:
        return None
    return (ftfc_score + sr_score + (rc_score or 0.0)) / 3


def pass_at_k_estimate(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one task with ``c`` successes in ``n`` trials: 1 - C(n-c, k) / C(n, k), a probability."""
    _check_counts(n, c, k)
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k_estimate(n: int, c: int, k: int) -> float:
    """pass^k (tau-bench) for one task: the chance that k trials drawn without replacement from the n all
    succeed, C(c, k) / C(n, k), a probability."""
    _check_counts(n, c, k)
    return math.comb(c, k) / math.comb(n, k)


def _check_counts(n: int, c: int, k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if n < k:
        raise ValueError(f"pass@k needs at least k trials per task: n={n} < k={k}")
    if not 0 <= c <= n:
        raise ValueError(f"successes c={c} must lie in 0..n={n}")


def _per_task_k(outcomes: Iterable[EpisodeOutcome], k: int,
                estimate: Callable[[int, int, int], float]) -> float | None:
    """Mean of ``estimate`` over tasks with at least k scored trials (0-100); None when no task has."""
    values = [estimate(len(group), sum(o.completed for o in group), k)
              for group in _by_task(outcomes).values() if len(group) >= k]
    return 100 * fmean(values) if values else None


def pass_at_k(outcomes: Iterable[EpisodeOutcome], k: int) -> float | None:
    """pass@k: the chance that at least one of k trials completes the task, estimated without bias per task
    and averaged over tasks with at least k scored trials (0-100)."""
    return _per_task_k(outcomes, k, pass_at_k_estimate)


def pass_hat_k(outcomes: Iterable[EpisodeOutcome], k: int) -> float | None:
    """pass^k: the chance that k independent trials all complete the task, per task C(c, k) / C(n, k),
    averaged over tasks with at least k scored trials (0-100)."""
    return _per_task_k(outcomes, k, pass_hat_k_estimate)


def tasks_with_k_trials(outcomes: Iterable[EpisodeOutcome], k: int) -> int:
    """How many tasks have at least k scored trials (the tasks pass@k and pass^k average over)."""
    return sum(len(group) >= k for group in _by_task(outcomes).values())


def tool_call_validity(outcomes: Iterable[EpisodeOutcome]) -> float | None:
    """The share of all tool calls in scored episodes that were valid (known tool, fitting arguments,
    allowed path), pooled over episodes (0-100); None when no tool was called."""
    kept = scored(outcomes)
    calls = sum(o.tool_calls for o in kept)
    if calls == 0:
        return None
    return 100 * (calls - sum(o.invalid_tool_calls for o in kept)) / calls


def mean_steps(outcomes: Iterable[EpisodeOutcome]) -> float | None:
    """The mean number of model turns per scored episode."""
    return _episode_mean(outcomes, lambda o: o.steps)


def mean_tokens(outcomes: Iterable[EpisodeOutcome]) -> float | None:
    """The mean prompt + completion tokens per scored episode."""
    return _episode_mean(outcomes, lambda o: o.tokens)


def mean_seconds(outcomes: Iterable[EpisodeOutcome]) -> float | None:
    """The mean wall time in seconds per scored episode."""
    return _episode_mean(outcomes, lambda o: o.seconds)


def _episode_mean(outcomes: Iterable[EpisodeOutcome], value: Callable[[EpisodeOutcome], float]) -> float | None:
    kept = scored(outcomes)
    return fmean(value(o) for o in kept) if kept else None


def infra_error_rate(outcomes: Iterable[EpisodeOutcome]) -> float | None:
    """The share of all episodes, scored or not, that ended in an infrastructure error (0-100)."""
    everything = list(outcomes)
    return 100 * sum(o.infra_error for o in everything) / len(everything) if everything else None


def rounds_of(outcomes: Sequence[EpisodeOutcome]) -> int | None:
    """The R that SR@R and RC@R are taken at; mixing episodes run with different R is an error."""
    found = sorted({o.max_rounds for o in outcomes})
    if len(found) > 1:
        raise ValueError(f"outcomes mix max_rounds {found}; SR@R and RC@R need one R, summarise them apart")
    return found[0] if found else None


def metrics_block(outcomes: Sequence[EpisodeOutcome], k: int) -> dict[str, Any]:
    """Every metric for one group of outcomes (one model, or one model's category), all functions of the
    outcomes' verdicts and counts: :func:`mean_seconds` (wall time) is left out, it goes to the run's timings."""
    f, sr, rc = ftfc(outcomes), success_rate(outcomes), remaining_chances(outcomes)
    kept = scored(outcomes)
    return {
        "episodes": len(outcomes),
        "scored_episodes": len(kept),
        "infra_errors": len(outcomes) - len(kept),
        "tasks": len({o.task_key for o in kept}),
        "R": rounds_of(outcomes),
        "k": k,
        "ftfc": f,
        "sr_at_r": sr,
        "rc_at_r": rc,
        "agencybench_average": agencybench_average(f, sr, rc),
        "pass_at_k": pass_at_k(outcomes, k),
        "pass_hat_k": pass_hat_k(outcomes, k),
        "tasks_with_k_trials": tasks_with_k_trials(outcomes, k),
        "tool_call_validity": tool_call_validity(outcomes),
        "mean_steps": mean_steps(outcomes),
        "mean_tokens": mean_tokens(outcomes),
        "infra_error_rate": infra_error_rate(outcomes),
    }


def summarize(outcomes: Iterable[EpisodeOutcome], k: int) -> dict[str, Any]:
    """All metrics per model, overall and per category.

    Returns ``{"k": k, "models": {model: {"overall": block, "categories": {category: block}}}}`` where a
    block is :func:`metrics_block`'s dict; models and categories are in sorted order. Raises ValueError
    for k < 1 or a (model, task, trial) that occurs twice.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    outcomes = list(outcomes)
    seen: set[tuple[str, str, int]] = set()
    for o in outcomes:
        key = (o.model, o.task_id, o.trial)
        if key in seen:
            raise ValueError(f"outcome {o.model}/{o.task_id}/trial {o.trial} occurs twice")
        seen.add(key)
    models: dict[str, Any] = {}
    for model in sorted({o.model for o in outcomes}):
        mine = [o for o in outcomes if o.model == model]
        models[model] = {
            "overall": metrics_block(mine, k),
            "categories": {category: metrics_block([o for o in mine if o.category == category], k)
                           for category in sorted({o.category for o in mine})},
        }
    return {"k": k, "models": models}
