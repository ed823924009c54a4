"""Eval metrics: pure functions over per-trial outcomes.

    outcomes = [EpisodeOutcome("t1", "base", 0, "algorithm", 3, 2, True, 2, 3, ...), ...]
    summarize(outcomes, k=4)["models"]["base"]["overall"]["sr_at_r"]     # 0-100

One :class:`EpisodeOutcome` is one trial of one model on one task. AgencyBench's units, as read here:

- a **query** is one subtask, given to the agent in order in one conversation, each with up to R rounds
  (the first response, then up to R - 1 rounds of feedback); a query not completed within R rounds ends
  the trial, and the queries after it are never reached;
- a **requirement** is one thing a query asks for, checked on its own: a builtin check, an AgencyBench
  acceptance criterion (a subtask without a list of them is one requirement), a HumanEval problem.

The three AgencyBench metrics (LIMI reports them at R = 3), each computed per trial, averaged over a
task's trials, then over tasks (the macro figure; the pooled, micro figure is reported beside it):

- **FTFC**: requirements met after the first response to each query, over all the task's requirements;
  the requirements of queries never reached count as unmet (the agent never delivered them).
- **SR@R**: queries completed within R rounds, over the task's queries (unreached ones are not completed).
- **RC@R**: over the queries completed, the unused rounds R - rounds used, normalised by R - 1 to 0-100
  (100 = first response, 0 = the last round); with R = 1 there is no feedback round and a completed query
  scores 100. A trial that completed no query has no RC value and is left out (an average over nothing).

Readings chosen where the published definitions leave a choice open, and why: per-task first (a task with
many queries or requirements weighs no more than one with few: tasks are the sampled unit); unreached
queries and requirements count as failed, not as missing (skipping them would reward failing early);
RC@R over completed queries only (AgencyBench defines it over successes; a failure has no unused rounds).
pass@k, pass^k and a task's success use whole-task completion: every query completed.

Measures of how well the agent works the tools, which move before success does (a model that cannot yet
solve a task may already call tools correctly, or learn to end with ``finish``):

- **tool-call validity**: the share of the tool calls due that were valid (known tool, fitting arguments,
  allowed path), pooled over the scored trials. A call is due at every model turn until the work is handed
  back; a turn where none could be read (a format error, or prose where the tools end the work with
  ``finish``) counts as one invalid call (see :func:`tool_call_validity` for the reading and why).
- **first-call validity**: the share of scored trials whose first assistant turn was a well-formed tool
  call: it parsed as tool calls (not a format error, not plain text), and each call names a tool the agent
  was offered, with arguments that fit that tool's schema. Whether the call then succeeds (a path refused,
  a command that fails) does not matter. Trials that ended before the model's first turn have no value.
- **finish rate**: the share of scored trials that called ``finish`` at least once (a call the tools
  accepted, which hands the turn back for verification), whatever the verdict.

First-call validity and the finish rate are shares of trials, pooled over the scored trials (with k = 1 the
same as averaging per task first).

Shared conventions:

- Trials with ``infra_error`` (the harness, sandbox, endpoint or judge broke) are left out of every
  score and only counted in :func:`infra_error_rate`: they say nothing about the model.
- A "task" is a (model, task id) pair.
- Rates are percentages on 0-100; means of steps, tokens and seconds are in their own units.
- A metric with nothing to average over (no scored trial, no success, no tool call) is None.
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

    ``subtasks_total``: the task's queries; ``subtasks_met_first_round``: queries fully met by their first
    response. ``completed``: every query completed within ``max_rounds`` rounds. ``rounds_used``: the most
    rounds any reached query ran (1 = the first response, before any feedback). ``requirements_total``:
    the requirements of all its queries, reached or not; ``requirements_met_first_round``: those met by
    the first response to their query. ``query_rounds``: the rounds each completed query used, in order
    (queries are completed in order, so its length is the number completed). ``first_call_valid``: the
    trial's first assistant turn was a well-formed tool call (None: no first turn, or not recorded);
    ``finish_calls``: the ``finish`` calls the tools accepted; ``missed_calls``: turns where a call was due and
    none could be read (format errors; plain-text turns when the tools end the work with ``finish``).
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
    requirements_total: int = 1
    requirements_met_first_round: int = 0
    query_rounds: tuple[int, ...] = ()
    first_call_valid: bool | None = None
    finish_calls: int = 0
    missed_calls: int = 0

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
        if self.requirements_total < self.subtasks_total:
            raise ValueError(f"{where}: requirements_total ({self.requirements_total}) must be at least the "
                             f"number of queries ({self.subtasks_total}): every query has a requirement")
        if not 0 <= self.requirements_met_first_round <= self.requirements_total:
            raise ValueError(f"{where}: requirements_met_first_round must lie in 0..{self.requirements_total}, "
                             f"got {self.requirements_met_first_round}")
        if len(self.query_rounds) > self.subtasks_total or any(not 1 <= r <= self.max_rounds for r in self.query_rounds):
            raise ValueError(f"{where}: query_rounds {self.query_rounds} must hold at most {self.subtasks_total} "
                             f"round counts in 1..{self.max_rounds}")
        if self.completed != (len(self.query_rounds) == self.subtasks_total):
            raise ValueError(f"{where}: completed is {self.completed} but {len(self.query_rounds)} of "
                             f"{self.subtasks_total} queries were completed")
        if not 0 <= self.invalid_tool_calls <= self.tool_calls:
            raise ValueError(f"{where}: invalid_tool_calls ({self.invalid_tool_calls}) must lie in "
                             f"0..tool_calls ({self.tool_calls})")
        if not 0 <= self.finish_calls <= self.tool_calls:
            raise ValueError(f"{where}: finish_calls ({self.finish_calls}) must lie in 0..tool_calls "
                             f"({self.tool_calls}): a finish call is a tool call")
        if self.missed_calls < 0:
            raise ValueError(f"{where}: missed_calls must be at least 0, got {self.missed_calls}")
        if self.first_call_valid and self.tool_calls < 1:
            raise ValueError(f"{where}: a valid first call is a tool call, but tool_calls is 0")

    @property
    def task_key(self) -> tuple[str, str]:
        return (self.model, self.task_id)

    @property
    def queries_completed(self) -> int:
        return len(self.query_rounds)

    def remaining(self) -> float | None:
        """This trial's RC value on 0-1: the mean normalised unused rounds of its completed queries."""
        if not self.query_rounds:
            return None
        return fmean(unused_share(r, self.max_rounds) for r in self.query_rounds)


def unused_share(rounds_used: int, max_rounds: int) -> float:
    """(R - rounds used) / (R - 1); 1.0 when R = 1 (no feedback round to use)."""
    return 1.0 if max_rounds == 1 else (max_rounds - rounds_used) / (max_rounds - 1)


def scored(outcomes: Iterable[EpisodeOutcome]) -> list[EpisodeOutcome]:
    """The episodes that count towards scores: all but the infra errors."""
    return [o for o in outcomes if not o.infra_error]


def _by_task(outcomes: Iterable[EpisodeOutcome]) -> dict[tuple[str, str], list[EpisodeOutcome]]:
    groups: dict[tuple[str, str], list[EpisodeOutcome]] = defaultdict(list)
    for outcome in scored(outcomes):
        groups[outcome.task_key].append(outcome)
    return groups


def _task_mean(outcomes: Iterable[EpisodeOutcome], value: Callable[[EpisodeOutcome], float | None]) -> float | None:
    """Mean over tasks of the per-task mean of ``value`` (trials where it is None left out), on 0-100;
    None when no task has a value."""
    per_task = []
    for group in _by_task(outcomes).values():
        values = [v for v in map(value, group) if v is not None]
        if values:
            per_task.append(fmean(values))
    return 100 * fmean(per_task) if per_task else None


def ftfc(outcomes: Iterable[EpisodeOutcome]) -> float | None:
    """First-turn functional completeness: the share of a task's requirements met by the first response to
    their query (unreached queries' requirements unmet), per trial, averaged over trials, then tasks (0-100)."""
    return _task_mean(outcomes, lambda o: o.requirements_met_first_round / o.requirements_total)


def success_rate(outcomes: Iterable[EpisodeOutcome]) -> float | None:
    """SR@R: the share of a task's queries completed within R rounds each (unreached ones not completed), per
    trial, averaged over trials, then tasks (0-100)."""
    return _task_mean(outcomes, lambda o: o.queries_completed / o.subtasks_total)


def remaining_chances(outcomes: Iterable[EpisodeOutcome]) -> float | None:
    """RC@R: over the completed queries of a trial, the mean share of rounds left unused,
    (R - rounds used) / (R - 1); averaged over the task's trials that completed a query, then over tasks
    (0-100; 100 = every completed query met by its first response). None when no query was completed.
    """
    return _task_mean(outcomes, EpisodeOutcome.remaining)


def ftfc_pooled(outcomes: Iterable[EpisodeOutcome]) -> float | None:
    """FTFC pooled over every requirement of every scored trial (the micro figure, 0-100)."""
    kept = scored(outcomes)
    total = sum(o.requirements_total for o in kept)
    return 100 * sum(o.requirements_met_first_round for o in kept) / total if total else None


def success_rate_pooled(outcomes: Iterable[EpisodeOutcome]) -> float | None:
    """SR@R pooled over every query of every scored trial (0-100)."""
    kept = scored(outcomes)
    total = sum(o.subtasks_total for o in kept)
    return 100 * sum(o.queries_completed for o in kept) / total if total else None


def remaining_chances_pooled(outcomes: Iterable[EpisodeOutcome]) -> float | None:
    """RC@R pooled over every completed query of every scored trial (0-100)."""
    shares = [unused_share(r, o.max_rounds) for o in scored(outcomes) for r in o.query_rounds]
    return 100 * fmean(shares) if shares else None


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
    """The share of the tool calls due in scored episodes that were valid, pooled over episodes (0-100);
    None when no call was due.

    The reading: a call is due at every model turn until the work is handed back. Each call the model made
    counts once, valid when the tools accepted it (known tool, fitting arguments, allowed path); each turn
    where no call could be read counts as one invalid call: a turn that did not parse (a format error) and,
    with tools that end the work by calling ``finish`` (the default set), a plain-text turn. With the
    ``limi`` set a plain-text turn is how the work ends, so it is not counted. Why: a model that answers in
    prose where the protocol needs a call has not used the tools, and scoring only the calls that parsed
    would rate a model that almost never manages one at 100."""
    kept = scored(outcomes)
    calls = sum(o.tool_calls for o in kept)
    due = calls + sum(o.missed_calls for o in kept)
    if due == 0:
        return None
    return 100 * (calls - sum(o.invalid_tool_calls for o in kept)) / due


def first_call_validity(outcomes: Iterable[EpisodeOutcome]) -> float | None:
    """The share of scored trials whose first assistant turn was a well-formed tool call (it parsed, and each
    call names an offered tool with arguments fitting its schema), over the scored trials that had a first
    turn (0-100); None when none had."""
    values = [o.first_call_valid for o in scored(outcomes) if o.first_call_valid is not None]
    return 100 * sum(values) / len(values) if values else None


def finish_rate(outcomes: Iterable[EpisodeOutcome]) -> float | None:
    """The share of scored trials that called ``finish`` at least once (a call the tools accepted), whatever
    the verdict (0-100); None when no trial was scored."""
    kept = scored(outcomes)
    return 100 * sum(o.finish_calls > 0 for o in kept) / len(kept) if kept else None


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
        "queries": sum(o.subtasks_total for o in kept),
        "requirements": sum(o.requirements_total for o in kept),
        "ftfc": f,
        "sr_at_r": sr,
        "rc_at_r": rc,
        "agencybench_average": agencybench_average(f, sr, rc),
        "ftfc_pooled": ftfc_pooled(outcomes),
        "sr_at_r_pooled": success_rate_pooled(outcomes),
        "rc_at_r_pooled": remaining_chances_pooled(outcomes),
        "pass_at_k": pass_at_k(outcomes, k),
        "pass_hat_k": pass_hat_k(outcomes, k),
        "tasks_with_k_trials": tasks_with_k_trials(outcomes, k),
        "tool_call_validity": tool_call_validity(outcomes),
        "first_call_validity": first_call_validity(outcomes),
        "finish_rate": finish_rate(outcomes),
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
