"""Shard stages on a work pool: one flow run per shard, each on a worker in its own checkout.

    limi_pipeline(on_pool=True)          # collect_shard@0..N-1 as flow runs of deployment limi-shard/collect-shard
                                         # (eval_shard@i: limi-shard/eval-shard)
    python -m flows.shards setup --pool limi-process --limit 4     # the pool's bound + crash detection, once

What runs where:

- the parent (``limi-pipeline``, in the main checkout) pushes every output and DVC's run cache to the remote
  (what the shards depend on), then submits one flow run of ``limi-shard/<stage>-shard`` per shard
  (``prefect.deployments.run_deployment``) and waits for them;
- a worker runs the ``limi-shard`` flow in the checkout named by its ``LIMI_ROOT``, at the parent's git
  commit: it fetches the run cache, ``dvc repro --pull <stage>@<i>`` (the upstream stages restored from the
  run cache, never rerun; missing inputs pulled), then pushes the shard's output and the run cache;
- back in the parent, each shard is restored from the run cache (``dvc repro --pull --single-item``, after a
  check that an entry matches: it is never run there), and the pipeline goes on to the merge stage.

Prefect schedules and DVC records; nothing here queues. The work pool's concurrency limit bounds how many
shards run at once. A shard whose worker dies stops sending heartbeats (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``,
set by the deployment): the automation ``setup`` creates marks its flow run Crashed, and the parent submits
the shard again, to whichever worker polls first. A shard that fails (rather than crashes) is retried by its
flow's own retries on the same worker, then fails the pipeline.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow, get_run_logger  # noqa: E402

from flows.dag import StageInfo  # noqa: E402
from flows.records import StageRecord  # noqa: E402
from pipelines.core.dvc import StageFailed, run_dvc, stage_environment  # noqa: E402
from pipelines.core.paths import repo_root  # noqa: E402

SHARD_FLOW = "limi-shard"
ZOMBIE_AUTOMATION = "limi: crash flow runs without heartbeats"
# what a shard's worker may take from the parent's stage environment (a sqlite path means nothing elsewhere)
SHARED_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_PARENT_RUN_ID", "LIMI_PARENT_RUN_ID",
               "LIMI_PREFECT_FLOW_RUN_ID")


def deployment_for(stage: str) -> str:
    """``collect_shard@3`` -> ``limi-shard/collect-shard``."""
    return f"{SHARD_FLOW}/{stage.split('@', 1)[0].replace('_', '-')}"


def git_head(project: Path) -> str:
    """The checkout's commit; a UserError-like RuntimeError when code or params differ from it (a worker runs
    the commit, so uncommitted changes would be a different pipeline; dvc.lock may differ, DVC rewrites it)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True)
    if head.returncode != 0:
        raise RuntimeError(f"{project}: not a git checkout; workers run a commit ({head.stderr.strip()})")
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=project,
                           capture_output=True, text=True).stdout.splitlines()
    dirty = [line[3:] for line in dirty if not line[3:].endswith("dvc.lock")]
    if dirty:
        raise RuntimeError(f"{project}: uncommitted changes to {', '.join(dirty[:5])}: workers run the "
                           "committed code and params; commit (and push to where the workers pull) first")
    return head.stdout.strip()


@flow(name=SHARD_FLOW, log_prints=True, retries=1, retry_delay_seconds=10)
def limi_shard(target: str, rev: str | None = None, env: dict[str, str] | None = None,
               root: str | None = None) -> dict[str, Any]:
    """Reproduce one shard stage (``collect_shard@2``) in this worker's checkout and push it (see the module)."""
    log = get_run_logger()
    project = Path(root).expanduser().resolve() if root else repo_root()
    if rev:
        here = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
        if here != rev:
            raise RuntimeError(f"{project} ({socket.gethostname()}) is at commit {here[:12] or '?'}, the pipeline at "
                               f"{rev[:12]}: update this worker's checkout (git pull) to run its shards")
    started = time.monotonic()
    outcome = run_dvc(["shard", target], root=project, env=stage_environment({"LIMI_ROOT": str(project), **(env or {})}),
                      log=log.info)
    name = target.split(":", 1)[-1]
    status = "restored" if name in outcome.restored else "ran" if name in outcome.ran else "skipped"
    log.info("%s: %s in %s on %s", name, status, project, socket.gethostname())
    return {"stage": name, "status": status, "host": socket.gethostname(), "root": str(project),
            "seconds": round(time.monotonic() - started, 2)}


def run_on_pool(shards: list[StageInfo], project: Path, stage_vars: dict[str, str | None],
                log: Callable[[str], None], *, resubmits: int = 2, timeout_s: float = 12 * 3600,
                poll_s: float = 2.0) -> list[StageRecord]:
    """Run ``shards`` (items of one matrix stage) as flow runs on the pool, then restore each here.

    A flow run marked Crashed (its worker died) is submitted again, up to ``resubmits`` times per shard.
    Raises StageFailed for a shard that failed, was cancelled or crashed too often, or did not come back in time.
    """
    from prefect import get_client
    from prefect.deployments import run_deployment

    rev = git_head(project)
    env = stage_environment(stage_vars)
    run_dvc(["push"], root=project, env=env, log=log)  # what the shards depend on, for the workers to pull
    uri = str(stage_vars.get("MLFLOW_TRACKING_URI") or "")
    # a tracking server the workers reach: their stage runs nest under this pipeline's run; a local store
    # (sqlite, a folder) means nothing on another machine, so they record in their own checkout's
    shared = {k: str(v) for k, v in stage_vars.items() if k in SHARED_VARS and v} if uri.startswith("http") else {}

    def submit(info: StageInfo):
        run = run_deployment(deployment_for(info.name), parameters={"target": info.name, "rev": rev, "env": shared},
                             timeout=0, flow_run_name=f"{info.name.replace('@', '-')}", as_subflow=True)
        log(f"{info.name}: submitted as flow run {run.name} ({run.id})")
        return run.id

    started = time.monotonic()
    pending = {info.name: submit(info) for info in shards}
    attempts = dict.fromkeys(pending, 1)
    seconds: dict[str, float] = {}
    with get_client(sync_client=True) as client:
        while pending:
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"shards {', '.join(sorted(pending))} not done after {timeout_s:.0f}s")
            time.sleep(poll_s)
            for name, run_id in list(pending.items()):
                state = client.read_flow_run(run_id).state
                if state is None or not state.is_final():
                    continue
                if state.is_completed():
                    seconds[name] = round(time.monotonic() - started, 2)
                    del pending[name]
                elif state.is_crashed() and attempts[name] <= resubmits:
                    log(f"{name}: flow run {run_id} crashed ({state.message or 'no message'}); submitting it again")
                    attempts[name] += 1
                    pending[name] = submit(next(i for i in shards if i.name == name))
                else:
                    raise StageFailed(f"flow run {run_id}", f"shard {name} ended {state.name}: {state.message or ''}",
                                      retryable=False)
    records = []
    for info in shards:  # from the run cache the workers pushed: restored, never run here
        outcome = run_dvc(["restore", info.target], root=project, env=env, log=log)
        if info.name in outcome.ran:  # _check_restorable prevents it; a record must not say otherwise
            raise StageFailed(info.target, "ran locally instead of being restored", retryable=False)
        records.append(StageRecord(info.name, "restored" if info.name in outcome.restored else "skipped",
                                   seconds=seconds.get(info.name, 0.0), attempts=attempts[info.name]))
    return records


# ----------------------------------------------------------------------------------------- command line
def setup(pool: str, limit: int | None, missing_after_s: int) -> str:
    """Create (or update) the process work pool with its concurrency limit, and the automation that marks a
    flow run Crashed once its heartbeats stop for ``missing_after_s`` (Prefect's zombie-run detection)."""
    from datetime import timedelta

    from prefect import get_client
    from prefect.automations import Automation
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process", concurrency_limit=limit))
        except ObjectAlreadyExists:
            client.update_work_pool(pool, WorkPoolUpdate(concurrency_limit=limit))
    trigger = EventTrigger(
        after={"prefect.flow-run.heartbeat"},
        expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
        match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
        for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1,
        within=timedelta(seconds=missing_after_s))
    action = ChangeFlowRunState(state=StateType.CRASHED, name="Crashed",
                                message=f"no heartbeat for {missing_after_s}s: its worker is gone")
    try:
        Automation.read(name=ZOMBIE_AUTOMATION).delete()
    except (ObjectNotFound, ValueError):
        pass
    Automation(name=ZOMBIE_AUTOMATION, trigger=trigger, actions=[action]).create()
    return f"work pool {pool} (concurrency limit {limit or 'none'}); automation {ZOMBIE_AUTOMATION!r} ({missing_after_s}s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.shards", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("setup", help="create the work pool with a concurrency limit and the crash detection")
    make.add_argument("--pool", default="limi-process")
    make.add_argument("--limit", type=int, default=None, help="at most this many flow runs at once on the pool")
    make.add_argument("--missing-after", type=int, default=90, metavar="S",
                      help="mark a run Crashed after S seconds without a heartbeat (default 90: 3 missed beats "
                           "of the deployments' PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30)")
    args = parser.parse_args(argv)
    print(setup(args.pool, args.limit, args.missing_after))
    return 0


if __name__ == "__main__":
    sys.exit(main())
