"""The ``limi-pipeline`` flow: one Prefect task per DVC stage, in DVC's DAG order; DVC decides what is stale.

    limi_pipeline()                                         # every stage; DVC skips those whose inputs did not change
    limi_pipeline(stages=["collect"])                       # that stage alone (what it reads must exist)
    limi_pipeline(overrides={"sft.epochs": "3"}, experiment="epochs3")    # a named DVC experiment
    limi_pipeline(on_pool=True)                             # shard stages (collect_shard@i) on the work pool

Command line (runs the flow once)::

    python -m flows.pipeline [--stages a,b] [--set key=value ...] [--name EXP] [--root DIR] [--on-pool]

Prefect runs, retries and times out; it never caches stage results (DVC's lock file is the cache).
Each flow run opens an MLflow parent run ``pipeline``: stage runs nest under it across processes
(``LIMI_PARENT_RUN_ID``), and it records which stages ran and the pipeline's headline metrics.
With ``overrides`` (or a name) the selected stages run as ``dvc exp run --temp -n NAME -S key=value``:
a named experiment DVC records and ``dvc exp show`` compares, while the workspace stays as it was.
With ``on_pool`` the items of a sharded stage (``collect_shard@0..N-1``) run at once as flow runs of the
``limi-shard`` deployments on the work pool, each on a worker in its own checkout (:mod:`flows.shards`), and
come back through DVC's remote and run cache; without it they run here one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Offline, Prefect's telemetry otherwise logs failures (STACK-NOTES); an explicit setting wins.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.runtime import flow_run, task_run  # noqa: E402
from prefect.tasks import exponential_backoff  # noqa: E402

from flows.dag import StageInfo, read_stages, select  # noqa: E402
from flows.records import (  # noqa: E402
    ParentRun,
    StageRecord,
    project_root,
    publish_eval_table,
    publish_mlflow_link,
    publish_stage,
    summary_metrics,
)
from pipelines.core import tracking  # noqa: E402
from pipelines.core.dvc import DvcOutcome, StageFailed, run_dvc, stage_environment  # noqa: E402
from pipelines.core.paths import repo_root  # noqa: E402

HOUR = 3600.0


@dataclass(frozen=True)
class StagePolicy:
    """How Prefect runs one stage: ``retries`` after a failure, the first delay ``backoff_s`` doubling each
    time, a wall-clock ``timeout_s`` per attempt, and ``tags`` for tag concurrency limits."""

    retries: int = 0
    backoff_s: float = 30.0
    timeout_s: float = 2 * HOUR
    tags: tuple[str, ...] = ()


# Retries for the stages that reach the network or a remote model (rate limits, 5xx, timeouts); collect
# resumes finished episodes, so a retry costs only the episodes in flight. `gpu` lets one concurrency
# limit bound training and evaluation: `prefect concurrency-limit create gpu 1`.
STAGE_POLICIES: dict[str, StagePolicy] = {
    "base_model": StagePolicy(retries=1, timeout_s=1 * HOUR),  # a hub id downloads
    "synthesize": StagePolicy(retries=2, timeout_s=6 * HOUR),
    "mine_prs": StagePolicy(retries=3, backoff_s=60.0, timeout_s=2 * HOUR),
    "pr_queries": StagePolicy(retries=2, timeout_s=6 * HOUR),
    "collect_shard": StagePolicy(retries=2, timeout_s=12 * HOUR),  # every shard collect_shard@i
    "collect": StagePolicy(timeout_s=1 * HOUR),  # the merge of the shards
    "curate": StagePolicy(timeout_s=2 * HOUR),
    "sft": StagePolicy(timeout_s=24 * HOUR, tags=("gpu",)),
    "eval_shard": StagePolicy(retries=2, timeout_s=12 * HOUR, tags=("gpu",)),  # every shard eval_shard@i
    "eval": StagePolicy(timeout_s=1 * HOUR),  # the merge: metrics, report, champion
}
DEFAULT_POLICY = StagePolicy()
# In an experiment the stage must read its own temporary copy, not the workspace these point at.
WORKSPACE_VARS = ("LIMI_ROOT", "LIMI_PARAMS")


def policy(stage: str) -> StagePolicy:
    """The stage's policy (a shard ``x@i``: stage ``x``'s), or the default for a stage the table does not name."""
    return STAGE_POLICIES.get(stage.split("@", 1)[0], DEFAULT_POLICY)


def _retry_unless_user_error(task, task_run, state) -> bool:
    """Retry what may pass next time; a stage that exited 2 (bad input or params) or a request DVC refused
    (unknown stage, missing input, a taken experiment name) would fail the same way again."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:
        return True
    return not (isinstance(exc, StageFailed) and not exc.retryable)


@task(cache_policy=NO_CACHE, persist_result=False, log_prints=True, retry_condition_fn=_retry_unless_user_error)
def dvc_stage(stage: str, target: str, root: str, stage_vars: dict[str, str | None],
              timeout_s: float) -> StageRecord:
    """Reproduce ``target`` alone (``dvc repro --single-item``); DVC runs it only if something it depends on changed."""
    log = get_run_logger()
    started = time.monotonic()
    outcome = run_dvc(["repro", target], root=Path(root), env=stage_environment(stage_vars), timeout_s=timeout_s,
                      log=log.info)
    status = "restored" if stage in outcome.restored else "ran" if stage in outcome.ran else "skipped"
    log.info("%s: %s", stage, status)
    return StageRecord(stage, status, seconds=round(time.monotonic() - started, 2), attempts=task_run.run_count)


@task(name="dvc-exp-run", cache_policy=NO_CACHE, persist_result=False, log_prints=True,
      retry_condition_fn=_retry_unless_user_error)
def dvc_experiment(name: str, targets: list[str], overrides: dict[str, Any], root: str,
                   stage_vars: dict[str, str | None], timeout_s: float) -> tuple[DvcOutcome, int]:
    """``dvc exp run --temp -n NAME -S key=value ... TARGETS``: the stages (and what they need) as one experiment."""
    log = get_run_logger()
    sets = [arg for key, value in (overrides or {}).items() for arg in ("--set", f"{key}={_param_value(value)}")]
    outcome = run_dvc(["exp", *targets, "--name", name, *sets], root=Path(root), env=stage_environment(stage_vars),
                      timeout_s=timeout_s, log=log.info)
    log.info("experiment %s: ran %s; skipped %s", name, outcome.ran or "nothing", outcome.skipped or "nothing")
    return outcome, task_run.run_count


def _param_value(value: Any) -> str:
    """A value for ``-S key=value``: strings as given, anything else as JSON (true, 3, [1, 2])."""
    return value if isinstance(value, str) else json.dumps(value)


@flow(name="limi-pipeline", log_prints=True)
def limi_pipeline(stages: list[str] | None = None, overrides: dict[str, str] | None = None,
                  experiment: str | None = None, root: str | None = None, on_pool: bool = False) -> dict[str, Any]:
    """Run the pipeline's DVC stages in DAG order.

    ``stages``: stage names to run (default all); each runs alone, so what it reads must exist.
    ``overrides``: ``{"sft.epochs": "3"}`` runs the stages as a DVC experiment with these params.
    ``experiment``: the experiment's name (default: this flow run's name); given alone, it still
    records the run as an experiment. ``root``: the DVC project (default: ``LIMI_ROOT`` or the cwd).
    ``on_pool``: run the items of sharded stages as flow runs on the work pool (:mod:`flows.shards`).
    Returns ``{"mlflow_run_id", "experiment", "exp_rev", "stages": [{stage, status, seconds, ...}]}``;
    the flow fails (and so does the parent MLflow run) when a stage fails.
    """
    project = Path(root).expanduser().resolve() if root else repo_root()
    every_stage = read_stages(project)
    chosen = select(every_stage, stages)
    exp_name = (experiment or flow_run.name or time.strftime("limi-%Y%m%d-%H%M%S")) \
        if (overrides or experiment) else None
    parent = _open_parent(project, chosen, exp_name, overrides)
    stage_vars = _stage_vars(project, parent, exp_name)

    records: list[StageRecord] = []  # filled as stages finish, so an interruption still records them
    exp_rev: str | None = None
    try:
        if exp_name:
            exp_rev, failure = _run_experiment(exp_name, chosen, stages is not None, overrides or {}, project,
                                               stage_vars, records)
        else:
            failure = _run_stages(chosen, project, stage_vars, records, on_pool)
    except BaseException:  # cancelled or interrupted: close the record before going down
        _close_parent(parent, records, "KILLED")
        raise

    _close_parent(parent, records, "FINISHED" if failure is None else "FAILED",
                  summary_metrics(project, exp_rev) if failure is None else {}, exp_rev)
    files = {info.name: info.summary_files for info in every_stage}  # an experiment also runs what it needs
    for record in records:
        publish_stage(record, project, files.get(record.stage, ()), exp_rev)
    publish_mlflow_link(parent)
    if failure is None and any(info.name == "eval" for info in chosen):
        publish_eval_table(project, exp_rev)
    if failure is not None:
        raise failure
    return {"mlflow_run_id": parent.run_id if parent else None, "experiment": exp_name, "exp_rev": exp_rev,
            "stages": [asdict(r) for r in records]}


def _open_parent(project: Path, chosen: list[StageInfo], exp_name: str | None,
                 overrides: dict[str, Any] | None) -> ParentRun | None:
    tags = {"prefect.flow_run_id": str(flow_run.id or ""), "pipeline.stages": ",".join(s.name for s in chosen)}
    if exp_name:
        tags["dvc.experiment"] = exp_name
    parent = ParentRun.open(project, tags)
    if parent and overrides:
        parent.log_params({f"override.{k}": _param_value(v) for k, v in overrides.items()})
    return parent


def _stage_vars(project: Path, parent: ParentRun | None, exp_name: str | None) -> dict[str, str | None]:
    """What the stage processes need to nest their MLflow runs under ``parent`` (None: remove the variable)."""
    with project_root(project):
        uri = tracking.tracking_uri()
    stage_vars: dict[str, str | None] = {
        "MLFLOW_TRACKING_URI": uri,  # a stage in a temporary experiment copy still records to this store
        tracking.PARENT_ENV: parent.run_id if parent else None,
        "LIMI_PREFECT_FLOW_RUN_ID": str(flow_run.id) if flow_run.id else None,
    }
    if parent:  # the children's experiment must be the parent's
        stage_vars["MLFLOW_EXPERIMENT_NAME"] = parent.experiment_name
    stage_vars.update(dict.fromkeys(WORKSPACE_VARS) if exp_name else {"LIMI_ROOT": str(project)})
    return stage_vars


def _close_parent(parent: ParentRun | None, records: list[StageRecord], status: str,
                  metrics: dict[str, float] | None = None, exp_rev: str | None = None) -> None:
    if parent is None:
        return
    parent.set_tags({f"stage.{r.stage}": r.status for r in records})
    if exp_rev:
        parent.set_tags({"dvc.experiment_rev": exp_rev})
    parent.log_metrics(metrics or {})
    parent.finish(status)


def _run_stages(chosen: list[StageInfo], project: Path, stage_vars: dict[str, str | None],
                records: list[StageRecord], on_pool: bool = False) -> BaseException | None:
    """One task per stage, in order, appending to ``records``; stops at the first stage that fails for good.
    With ``on_pool``, the items of a sharded stage go to the work pool together."""
    done: set[str] = set()
    for info in chosen:
        if info.name in done:
            continue
        rules = policy(info.name)
        if on_pool and "@" in info.name:
            base = info.name.split("@", 1)[0]
            items = [i for i in chosen if i.name.split("@", 1)[0] == base]
            done.update(i.name for i in items)
            started = time.monotonic()
            try:
                records.extend(_pool_shards(items, str(project), stage_vars, rules.timeout_s))
            except Exception as exc:  # noqa: BLE001 - recorded, then raised by the flow
                records.append(StageRecord(base, "failed", seconds=round(time.monotonic() - started, 2),
                                           error=str(exc)))
                return exc
            continue
        run = dvc_stage.with_options(
            name=f"dvc-{info.name}", task_run_name=info.name, retries=rules.retries,
            retry_delay_seconds=exponential_backoff(rules.backoff_s) if rules.retries else 0,
            retry_jitter_factor=0.2 if rules.retries else None, timeout_seconds=rules.timeout_s,
            tags=["dvc", *rules.tags])
        started = time.monotonic()
        state = run(info.name, info.target, str(project), stage_vars, rules.timeout_s, return_state=True)
        if state.is_completed():
            records.append(state.result())
            continue
        error = _as_exception(state.result(raise_on_failure=False))
        records.append(StageRecord(info.name, "failed", seconds=round(time.monotonic() - started, 2),
                                   attempts=_run_count(state), error=str(error)))
        return error
    return None


@task(name="shards-on-pool", cache_policy=NO_CACHE, persist_result=False, log_prints=True)
def _pool_shards(items: list[StageInfo], root: str, stage_vars: dict[str, str | None],
                 timeout_s: float) -> list[StageRecord]:
    """The items of one sharded stage as flow runs on the work pool, restored here (:func:`flows.shards.run_on_pool`)."""
    from flows.shards import run_on_pool

    return run_on_pool(items, Path(root), stage_vars, get_run_logger().info, timeout_s=timeout_s)


def _run_experiment(name: str, chosen: list[StageInfo], selected: bool, overrides: dict[str, Any], project: Path,
                    stage_vars: dict[str, str | None],
                    records: list[StageRecord]) -> tuple[str | None, BaseException | None]:
    """One task for the whole experiment: DVC reproduces it in a temporary copy, so the stages cannot be
    split across tasks; the per-stage records come from DVC's own account of what it ran.
    Returns the experiment's git revision (None if it failed) and the failure, if any."""
    rules = [policy(info.name) for info in chosen]
    timeout_s = sum(r.timeout_s for r in rules) or DEFAULT_POLICY.timeout_s
    run = dvc_experiment.with_options(
        task_run_name=f"exp-{name}", retries=max((r.retries for r in rules), default=0),
        retry_delay_seconds=exponential_backoff(max((r.backoff_s for r in rules), default=30.0)),
        retry_jitter_factor=0.2, timeout_seconds=timeout_s,
        tags=["dvc", "dvc-experiment", *sorted({t for r in rules for t in r.tags})])
    targets = [info.target for info in chosen] if selected else []
    started = time.monotonic()
    state = run(name, targets, overrides, str(project), stage_vars, timeout_s, return_state=True)
    if state.is_completed():
        outcome, attempts = state.result()
        records.extend(_experiment_records(outcome, attempts))
        return outcome.exp_rev, None
    error = _as_exception(state.result(raise_on_failure=False))
    attempts = _run_count(state)
    outcome = getattr(error, "outcome", None)
    records.extend(_experiment_records(outcome, attempts) if outcome else [])
    if records and records[-1].status == "ran":  # DVC stops at the stage that failed
        records[-1].status, records[-1].error = "failed", str(error)
    else:
        records.append(StageRecord(f"exp-{name}", "failed", seconds=round(time.monotonic() - started, 2),
                                   attempts=attempts, error=str(error)))
    return None, error


def _experiment_records(outcome: DvcOutcome, attempts: int) -> list[StageRecord]:
    """One record per stage DVC visited, in the order it visited them."""
    kinds = {stage: kind for kind in ("ran", "restored", "skipped") for stage in getattr(outcome, kind)}
    return [StageRecord(stage, kinds.get(stage, "ran"), seconds=seconds, attempts=attempts)
            for stage, seconds in outcome.seconds.items()]


def _as_exception(value: Any) -> BaseException:
    return value if isinstance(value, BaseException) else RuntimeError(str(value))


def _run_count(state) -> int:
    """How many times the task ran (retries included), from the server's record of it."""
    try:
        from prefect import get_client

        with get_client(sync_client=True) as client:
            return client.read_task_run(state.state_details.task_run_id).run_count
    except Exception:
        return 1


# ----------------------------------------------------------------------------------------- command line
def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["sft.epochs=3", ...]`` -> ``{"sft.epochs": "3"}``; ValueError names a malformed item."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. sft.epochs=3")
        overrides[key.strip()] = value
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.pipeline",
        description="Run the limi-pipeline Prefect flow once: the DVC stages in DAG order (DVC skips what "
                    "did not change). With --set or --name the stages run as a named DVC experiment "
                    "(dvc exp run --temp) and the workspace is left unchanged.")
    parser.add_argument("--stages", help="comma-separated stage names (default: every stage in dvc.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a params.yaml override for an experiment, e.g. --set sft.epochs=3 (repeatable)")
    parser.add_argument("--name", help="the DVC experiment's name (default: the flow run's name)")
    parser.add_argument("--root", help="the DVC project root (default: LIMI_ROOT or the current directory)")
    parser.add_argument("--on-pool", action="store_true",
                        help="run sharded stages' items as flow runs on the work pool (see flows/shards.py)")
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.set)
    except ValueError as exc:
        parser.error(str(exc))
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None
    state = limi_pipeline(stages=stages, overrides=overrides or None, experiment=args.name, root=args.root,
                          on_pool=args.on_pool, return_state=True)
    if not state.is_completed():
        print(f"limi-pipeline: {state.name}: {state.message or ''}", file=sys.stderr)
        return 1
    summary = state.result()
    for record in summary["stages"]:
        print(f"{record['stage']:<16} {record['status']:<9} {record['seconds']:8.1f} s")
    if summary["experiment"]:
        print(f"dvc experiment: {summary['experiment']} ({summary['exp_rev']})")
    if summary["mlflow_run_id"]:
        print(f"mlflow parent run: {summary['mlflow_run_id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
