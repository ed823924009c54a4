"""Trials: one model working one task's subtasks through the harness, and every trial of an evaluation.

One trial works a task's subtasks in order, in one workspace and one conversation; each subtask is an
episode of the agent loop with up to R = ``eval.rounds`` rounds (the first attempt, then feedback from a
simulated user that names the unmet requirements, never a hidden check). A subtask that still fails after
R rounds ends the trial; later subtasks count as unmet. See :func:`trial_outcome` for how a trial becomes
an :class:`~pipelines.evaluation.metrics.EpisodeOutcome`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Union

from pipelines.agent.harness import Harness, Session, pool_size, run_pool, verdict, versions
from pipelines.agent.loop import EpisodeResult
from pipelines.agent.toolsets import tool_set as get_tool_set
from pipelines.agent.traces import EpisodeTracer
from pipelines.agent.users import SimulatedUser
from pipelines.agent.verifiers import needs_judge, requirement_count
from pipelines.core.errors import UserError
from pipelines.core.params import params_hash
from pipelines.evaluation.config import EvalParams
from pipelines.core.schema import EvalMeta, SubtaskRecord, Verdict
from pipelines.evaluation.metrics import EpisodeOutcome
from pipelines.evaluation.suites.common import EvalTask, workspace_root
from pipelines.evaluation.tasks import answer_sources
from pipelines.llm.base import ChatModel

log = logging.getLogger(__name__)

#: A model under test: one shared instance, or a factory giving each (task, trial) its own.
ModelSource = Union[ChatModel, Callable[[EvalTask, int], ChatModel]]


@dataclass
class Trial:
    """One model's trial on one task: the outcome the metrics read, the trajectory record (an
    :class:`~pipelines.core.schema.EvalResult` as JSON), and its wall seconds (for the run's timings only)."""

    task: EvalTask
    outcome: EpisodeOutcome
    record: dict[str, Any]
    seconds: float = 0.0


def trial_sampling(settings: EvalParams, trial: int) -> dict[str, Any]:
    """The sampling settings of trial ``trial``: a seed of its own, so k sampled trials are not k copies."""
    sampling = settings.sampling.model_dump()
    if sampling.get("seed") is not None:
        sampling["seed"] += trial
    return sampling


def run_trial(task: EvalTask, model_name: str, model: ChatModel, trial: int, settings: EvalParams,
              harness: Harness, *, judge: ChatModel | None = None,
              model_info: dict[str, Any] | None = None, tracer: EpisodeTracer | None = None,
              tool_set: str | None = None) -> Trial:
    """Work ``task``'s subtasks in order in one workspace and one conversation; return outcome and record.

    Each subtask is one episode (limits per subtask, R rounds, simulated-user feedback) continuing the
    previous subtask's messages; the trial stops at the first subtask that fails after its rounds or ends
    in an infrastructure error. With ``tracer`` the trial also becomes an MLflow trace (a span per subtask).
    ``tool_set`` (default: ``settings.tool_set``) names the tools the model gets.
    """
    sampling = trial_sampling(settings, trial)
    tools = tool_set or settings.tool_set
    key = trial_key(task, model_name, trial, tools)
    user = SimulatedUser(policy=settings.feedback)
    tape = tracer.tape() if tracer is not None else None
    trace = {"name": "trial", "query": task.subtasks[0].query, "steps": [s.query for s in task.subtasks],
             "tags": {"limi.task_id": task.id, "limi.model": model_name, "limi.trial": trial,
                      "limi.suite": task.suite, "limi.category": task.category}}
    try:
        session = harness.run(task.as_query(0), model, user, root=workspace_root(task), steps=task.subtasks,
                              sampling=sampling, judge=judge, key=key, tape=tape, tool_set=tools)
    except Exception as exc:
        if tape is not None:
            tracer.record(tape, None, error=f"{type(exc).__name__}: {exc}", **trace)
        raise
    if tape is not None:
        tracer.record(tape, session, **trace)
    outcome = trial_outcome(task, model_name, trial, settings, session)
    record = trial_record(task, outcome, session, settings, sampling, model_info or {"model": model_name})
    return Trial(task, outcome, record, session.seconds)


def trial_outcome(task: EvalTask, model_name: str, trial: int, settings: EvalParams,
                  session: Session) -> EpisodeOutcome:
    """The trial as the metrics read it (see :mod:`pipelines.evaluation.metrics` for the readings):

    - ``requirements_total``: the requirements of every subtask (query), reached or not;
      ``requirements_met_first_round``: those the first verification of their subtask found met;
    - ``query_rounds``: the rounds each completed subtask used (the completed ones are a prefix: the
      trial stops at the first subtask that fails after its rounds);
    - ``subtasks_met_first_round``: subtasks whose first verification passed; ``completed``: every
      subtask passed; ``rounds_used``: the most rounds any reached subtask ran (descriptive only);
    - ``infra_error``: some subtask ended in ``infra_error`` (harness, sandbox, endpoint or judge broke);
      the metrics leave such trials out of every score;
    - tool calls, invalid calls, accepted ``finish`` calls, steps, tokens (prompt + completion) and seconds
      summed over subtasks;
    - ``first_call_valid``: whether the trial's first assistant turn (the first of subtask 1) was a tool
      call that parsed and named an offered tool with arguments fitting its schema; None when the trial
      ended before the model's first turn.
    """
    episodes = session.episodes
    usage = session.usage()
    counts = [requirement_count(s.verifier) for s in task.subtasks]
    met = sum(min(n, sum(e.first_round.requirement_verdicts())) for n, e in zip(counts, episodes) if e.first_round)
    completed_rounds: list[int] = []
    for episode in episodes:
        if not episode.passed:
            break
        completed_rounds.append(episode.rounds_used)
    return EpisodeOutcome(
        task_id=task.id, model=model_name, trial=trial, category=task.category,
        subtasks_total=len(task.subtasks),
        subtasks_met_first_round=sum(_passed_first_round(e) for e in episodes),
        completed=len(completed_rounds) == len(task.subtasks),
        rounds_used=max(e.rounds_used for e in episodes), max_rounds=settings.rounds,
        infra_error=any(e.termination == "infra_error" for e in episodes),
        tool_calls=session.total("tool_calls"), invalid_tool_calls=session.total("invalid_tool_calls"),
        steps=session.total("steps"), tokens=usage.prompt_tokens + usage.completion_tokens,
        seconds=round(sum(e.seconds for e in episodes), 3),
        requirements_total=sum(counts), requirements_met_first_round=met, query_rounds=tuple(completed_rounds),
        first_call_valid=episodes[0].first_turn_valid, finish_calls=session.total("finish_calls"),
        missed_calls=session.total("missed_calls"),
    )


def trial_record(task: EvalTask, outcome: EpisodeOutcome, session: Session, settings: EvalParams,
                 sampling: dict[str, Any], model_info: dict[str, Any]) -> dict[str, Any]:
    """The trial as a trajectory record: collect's ``messages``/``tools``/``meta`` with eval's fields added;
    ``first_round`` and ``final`` score the share of subtasks met, first time and in the end."""
    n = len(task.subtasks)
    tools = get_tool_set(session.tool_set)
    subtasks = [_subtask_record(number, e, requirement_count(task.subtasks[number - 1].verifier))
                for number, e in enumerate(session.episodes, 1)]
    last_final = session.last.final
    meta = EvalMeta.model_validate({
        **session.meta(settings, sampling=sampling, user="simulated"),
        "episode_key": params_hash({"task": task.id, "suite": task.suite, "model": outcome.model,
                                    "model_info": model_info, "trial": outcome.trial, "rounds": settings.rounds,
                                    "limits": settings.limits.model_dump(), "sampling": sampling,
                                    **_tool_set_field(session.tool_set)}),
        **_task_fields(task, outcome.model, outcome.trial, model_info),
        "rounds_used": outcome.rounds_used,
        "first_round": Verdict(passed=outcome.subtasks_met_first_round == n,
                               score=round(outcome.subtasks_met_first_round / n, 4), infra_error=None),
        "final": Verdict(passed=outcome.completed, score=round(sum(s.passed for s in subtasks) / n, 4),
                         infra_error=last_final.infra_error if last_final else None),
        "passed": outcome.completed, "subtasks": subtasks, "outcome": outcome_fields(outcome),
        "system_prompt_sha": hashlib.sha256(tools.system_prompt.encode()).hexdigest()[:12],
    })
    return {"messages": session.messages, "tools": tools.schemas,
            "meta": meta.model_dump(mode="json", exclude_unset=True)}


def trial_key(task: EvalTask, model_name: str, trial: int, tool_set: str) -> str:
    """The trial's stable key (its workspace's name, and what picks its shard): task, model, trial, tool set."""
    return params_hash({"task": task.id, "suite": task.suite, "model": model_name, "trial": trial,
                        **_tool_set_field(tool_set)})


def trial_from_record(task: EvalTask, record: dict[str, Any]) -> Trial:
    """A trial back from its record (a shard's output): the outcome as recorded, wall seconds unknown (0)."""
    fields = dict(record["meta"]["outcome"])
    fields["query_rounds"] = tuple(fields.get("query_rounds") or ())
    return Trial(task, EpisodeOutcome(**fields), record)


def infra_trial(task: EvalTask, name: str, trial: int, settings: EvalParams, error: str,
                info: dict[str, Any], tool_set: str | None = None) -> Trial:
    """A trial whose harness broke (not the model): an infra error, kept out of every score."""
    outcome = EpisodeOutcome(task_id=task.id, model=name, trial=trial, category=task.category,
                             subtasks_total=len(task.subtasks), subtasks_met_first_round=0, completed=False,
                             rounds_used=0, max_rounds=settings.rounds, infra_error=True,
                             requirements_total=sum(requirement_count(s.verifier) for s in task.subtasks))
    tools = get_tool_set(tool_set or settings.tool_set)
    messages = [{"role": "system", "content": tools.system_prompt},
                {"role": "user", "content": task.subtasks[0].query}]
    meta = EvalMeta.model_validate({
        **_task_fields(task, name, trial, info), "sampling": trial_sampling(settings, trial), "passed": False,
        "termination": "infra_error", "error": error[:2000], "rounds_used": 0, "max_rounds": settings.rounds,
        "subtasks": [], "outcome": outcome_fields(outcome), "versions": versions(), **_tool_set_field(tools.name)})
    record = {"messages": messages, "tools": tools.schemas, "meta": meta.model_dump(mode="json", exclude_unset=True)}
    return Trial(task, outcome, record)


def outcome_fields(outcome: EpisodeOutcome) -> dict[str, Any]:
    """The outcome as recorded: every field but the wall seconds (run-dependent, so not in an output)."""
    fields = asdict(outcome)
    del fields["seconds"]
    return fields


def _task_fields(task: EvalTask, model: str, trial: int, info: dict[str, Any]) -> dict[str, Any]:
    return {"task_id": task.id, "suite": task.suite, "source": "eval", "domain": task.domain,
            "category": task.category, "query": task.subtasks[0].query, "teacher": model, "model": model,
            "model_info": info, "trial": trial, "subtasks_total": len(task.subtasks)}


def _tool_set_field(name: str) -> dict[str, str]:
    """``{"tool_set": name}`` for a set other than the default, else nothing: keys and records of the default
    set read as they did before tool sets."""
    return {"tool_set": name} if name != "default" else {}


def _passed_first_round(episode: EpisodeResult) -> bool:
    return bool(episode.first_round and episode.first_round.passed)


def _subtask_record(number: int, episode: EpisodeResult, requirements: int) -> SubtaskRecord:
    first = episode.first_round.requirement_verdicts() if episode.first_round else []
    return SubtaskRecord(number=number, passed_first_round=_passed_first_round(episode), passed=episode.passed,
                         requirements=requirements, requirements_met_first_round=min(requirements, sum(first)),
                         rounds_used=episode.rounds_used, termination=episode.termination, error=episode.error,
                         first_round=verdict(episode.first_round), final=verdict(episode.final, checks=True),
                         steps=episode.steps, tool_calls=episode.tool_calls)


# ------------------------------------------------------------------ all trials
def evaluate(tasks: list[EvalTask], models: Mapping[str, ModelSource], settings: EvalParams, *,
             judge: ChatModel | None = None, parallel: int | None = None,
             model_info: Mapping[str, dict[str, Any]] | None = None,
             tracer: EpisodeTracer | None = None, shard: tuple[int, int] | None = None) -> list[Trial]:
    """Every model on every task, ``settings.k`` trials each, in parallel threads; trials in a stable order
    (task, trial, model).

    ``models`` maps a name to a chat model shared by all its trials (the local backend serialises
    generation itself) or to a factory ``(task, trial) -> model`` (fakes that keep per-conversation state).
    ``tracer`` writes each trial's MLflow trace (:mod:`pipelines.agent.traces`).
    ``shard`` ``(i, n)``: only the trials whose :func:`trial_key` hashes to shard i of n.
    A rubric subtask (or a judged patch comparison) needs ``judge``. A UserError (a task's workspace cannot be laid out, say) stops the
    evaluation; any other failure of a trial's harness counts as that trial's infrastructure error.
    """
    if not models:
        raise UserError("no models to evaluate (eval.models is empty)")
    if judge is None and any(needs_judge(s.verifier) for t in tasks for s in t.subtasks):
        raise UserError("subtasks checked by the judge need a judge model (params: llm.roles.judge)")
    harness = Harness(settings, hide_paths=answer_sources(tasks), judge_sees_transcript=True)
    # each model gets its entry's tool set (e.g. the one it was trained with), else eval.tool_set
    tool_sets = {m.name: m.tool_set for m in settings.models if m.tool_set}
    jobs = trial_jobs(tasks, list(models), settings)
    if shard is not None:
        from pipelines.core.shards import shard_of

        jobs = [job for job in jobs if shard_of(job_key(job, settings), shard[1]) == shard[0]]
    workers = pool_size(settings, len(jobs), parallel)
    log.info("%d tasks x %d models x k=%d: %d trials, R=%d, %d at once", len(tasks), len(models), settings.k,
             len(jobs), settings.rounds, workers)

    def work(job: tuple[EvalTask, str, int]) -> Trial:
        task, name, trial = job
        source = models[name]
        model = source if hasattr(source, "chat") else source(task, trial)
        info = (model_info or {}).get(name) or {"model": name}
        tools = tool_sets.get(name, settings.tool_set)
        try:
            return run_trial(task, name, model, trial, settings, harness, judge=judge, model_info=info,
                             tracer=tracer, tool_set=tools)
        except UserError:
            raise
        except Exception as exc:  # the harness broke, not the model: an infra error, kept out of the scores
            log.error("trial %s/%s/%d failed in the harness: %s", name, task.id, trial, exc)
            return infra_trial(task, name, trial, settings, f"{type(exc).__name__}: {exc}", info, tools)

    return run_pool(jobs, work, workers=workers, desc="trials", unit="trial")


def trial_jobs(tasks: list[EvalTask], names: list[str], settings: EvalParams) -> list[tuple[EvalTask, str, int]]:
    """Every (task, model, trial) in the stable order of the outputs: task, trial, model."""
    return [(task, name, trial) for task in tasks for trial in range(settings.k) for name in names]


def job_key(job: tuple[EvalTask, str, int], settings: EvalParams) -> str:
    task, name, trial = job
    tool_sets = {m.name: m.tool_set for m in settings.models if m.tool_set}
    return trial_key(task, name, trial, tool_sets.get(name, settings.tool_set))
