"""Running a sweep: plan it, open its MLflow runs, queue one DVC experiment per point, run the queue, wait.

Each point is queued with ``dvc exp run --queue --downstream -n NAME -S ... curate``; ``dvc queue
start --jobs N`` runs them. Before queueing, each point gets a child run under the sweep's MLflow run
and a note under ``.dvc/tmp/sweeps/points/`` through which its stage runs nest under that child run
(:func:`pipelines.core.tracking.sweep_point`).
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from pipelines.core import tracking
from pipelines.core.dvc import dvc_command, stage_environment, start_dvc
from pipelines.core.errors import UserError
from pipelines.core.io import atomic_write_json
from pipelines.core.mlflow_runs import RunStore
from pipelines.core.params import Params, load_params
from pipelines.tools.sweep.measures import DEFAULT_MEASURES, Measure, parse_measures
from pipelines.tools.sweep.plan import Point, check_upstream, eligible_counts, plan, queue_command
from pipelines.tools.sweep.record import DONE, SWEEPS, save_record

log = logging.getLogger(__name__)

# What the stages read from the project that queued them: an experiment runs in a copy of its own.
WORKSPACE_VARS = ("LIMI_ROOT", "LIMI_PARAMS", "LIMI_PARENT_RUN_ID")


def run_sweep(root: Path, subsets: dict[str, list[str]], sizes: list[int], seeds: list[int], *, jobs: int = 1,
              baseline: str = "every", measures: list[Measure] | None = None, suites: list[str] | None = None,
              rounds: int | None = None, dry_run: bool = False, wait: bool = True, poll_s: float = 5.0) -> dict[str, Any]:
    """Plan, queue, run and wait; return the sweep record (also saved under ``.dvc/tmp/sweeps``).

    ``dry_run`` prints the ``dvc`` commands and returns the plan; without ``wait`` the experiments are
    queued but the queue is not started.
    """
    params = load_params(root / "params.yaml")
    check_ready(params, root)
    available = eligible_counts(params, root, subsets)
    sweep_id = time.strftime("sweep-%Y%m%d-%H%M%S")
    points, notes = plan(subsets, available, sizes, seeds, sweep_id, baseline)
    for note in notes:
        log.info("%s", note)
    if not points:
        raise UserError("no experiment to run: every teacher subset was skipped")
    commands = [queue_command(p, subsets, params, suites, rounds) for p in points]
    if dry_run:
        for cmd in commands:
            print("dvc " + shlex.join(cmd))
        return {"id": sweep_id, "points": [asdict(p) for p in points], "notes": notes, "available": available}
    keys = [m.key for m in measures or parse_measures(DEFAULT_MEASURES)]
    record: dict[str, Any] = {"id": sweep_id, "main_metric": params.eval.main_metric, "sizes": sizes, "seeds": seeds,
                              "subsets": subsets, "baseline": baseline, "measures": keys, "suites": suites or "all",
                              "rounds": rounds or params.eval.rounds, "available": available,
                              "notes": notes, "points": []}
    open_sweep_run(root, record, params)
    queue_points(root, record, points, commands)
    if wait:
        finish_points(root, record, run_queue(root, record, jobs, poll_s))
    return record


def check_ready(params: Params, root: Path) -> None:
    """Raise UserError unless a fine-tuned model is evaluated and the DVC cache holds what curate starts from."""
    if not [m for m in params.eval.models if m.adapter]:
        raise UserError("eval.models has no entry with an adapter: nothing in the sweep would evaluate the "
                        "fine-tuned model")
    problems = check_upstream(root)
    if problems:
        raise UserError("the sweep reuses what the stages before curate made, but:\n  " + "\n  ".join(problems))


def open_sweep_run(root: Path, record: dict[str, Any], params: Params) -> None:
    """Open the sweep's MLflow run; add its store, run id and the baseline commit to ``record``."""
    store = RunStore.open(root)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    sweep_id = record["id"]
    run_id = store.create_run(sweep_id, tags={"sweep.id": sweep_id, "stage": "sweep", **tracking.git_identity(root)},
                              params={"sweep.sizes": ",".join(map(str, record["sizes"])),
                                      "sweep.seeds": ",".join(map(str, record["seeds"])),
                                      "sweep.teachers": ",".join(record["subsets"]),
                                      "sweep.baseline": record["baseline"],
                                      "sweep.measures": ",".join(record["measures"]),
                                      "eval.main_metric": params.eval.main_metric,
                                      "base_model.source": params.base_model.source,
                                      **{f"sweep.available.{k}": v for k, v in record["available"].items()}})
    record.update(baseline_rev=head, tracking_uri=store.uri, experiment_id=store.experiment_id, run_id=run_id)


def queue_points(root: Path, record: dict[str, Any], points: list[Point], commands: list[list[str]]) -> None:
    """Per point: a child run of the sweep's run, the note its stages nest by, and ``dvc exp run --queue``."""
    store = RunStore(record["tracking_uri"], record["experiment_id"])
    experiment = store.experiment_name
    for point, cmd in zip(points, commands):
        tags = {"sweep.id": record["id"], "sweep.size": str(point.size), "sweep.seed": str(point.seed),
                "sweep.teachers": point.teachers}
        run_id = store.create_run(point.name, tags={**tags, "dvc.experiment": point.name, "stage": "sweep-point"},
                                  params={"sweep.size": point.size, "sweep.seed": point.seed,
                                          "sweep.teachers": point.teachers, "sweep.with_baseline": point.with_baseline},
                                  parent_run_id=record["run_id"])
        atomic_write_json(root / tracking.SWEEP_POINTS / f"{point.name}.json", {
            "parent_run_id": run_id, "experiment": experiment, "tracking_uri": store.uri, "tags": tags})
        record["points"].append({**asdict(point), "run_id": run_id})
        dvc_command(cmd, root)
        log.info("queued %s", point.name)
    save_record(root, record)


def run_queue(root: Path, record: dict[str, Any], jobs: int, poll_s: float) -> dict[str, str]:
    """Start DVC's queue and wait for the sweep's experiments; on an interruption, remove and kill them.

    Returns experiment name -> Success | Failed | Missing.
    """
    names = [p["name"] for p in record["points"]]
    env = stage_environment({**dict.fromkeys(WORKSPACE_VARS), "MLFLOW_TRACKING_URI": record["tracking_uri"]})
    # `dvc queue start` may stay up as the parent of its worker: not waited on here, its output goes to a file.
    out = (root / SWEEPS / f"{record['id']}.queue.log").open("a")
    starters: list[subprocess.Popen] = []

    def start() -> None:
        starters.append(start_dvc(["queue", "start", "--jobs", str(jobs)], root, env, out))

    start()
    try:
        states = wait_for(root, names, poll_s=poll_s, restart=start)
    except BaseException:
        log.warning("stopping: removing this sweep's queued experiments and killing the running one")
        dvc_command(["queue", "remove", *names], root, check=False)
        running = [n for n, s in queue_status(root).items() if n in names and s == "Running"]
        if running:
            dvc_command(["queue", "kill", *running], root, check=False)
        raise
    finally:
        out.close()
    for starter in starters:
        try:
            starter.wait(timeout=60)  # its worker exits once the queue is empty
        except subprocess.TimeoutExpired:
            log.info("dvc queue start (pid %d) is still up; `dvc queue stop` ends its worker", starter.pid)
    return states


def finish_points(root: Path, record: dict[str, Any], states: dict[str, str]) -> None:
    """Record each point's final state, close its MLflow run, show the end of a failed one's log."""
    store = RunStore(record["tracking_uri"], record["experiment_id"])
    for entry in record["points"]:
        entry["status"] = states.get(entry["name"], "Missing")
        store.terminate(entry["run_id"], entry["status"] == "Success")
        if entry["status"] != "Success":
            logs = dvc_command(["queue", "logs", entry["name"]], root, check=False)
            log.warning("%s %s; its log ends:\n%s", entry["name"], entry["status"].lower(),
                        "\n".join((logs.stdout or logs.stderr).strip().splitlines()[-25:]))
    save_record(root, record)


def queue_status(root: Path) -> dict[str, str]:
    """Experiment name -> Queued | Running | Success | Failed, as ``dvc queue status`` shows them."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {e["name"]: e["status"] for e in repo.experiments.celery_queue.status() if e.get("name")}


def queue_workers(root: Path) -> int:
    """How many DVC queue workers answer (busy or idle), as ``dvc queue status`` counts them."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return len(repo.experiments.celery_queue.worker_status())


def wait_for(root: Path, names: list[str], poll_s: float = 5.0, restart: Callable[[], None] | None = None,
             stall_s: float = 60.0) -> dict[str, str]:
    """Block until every named experiment succeeded or failed; report each change of state.

    DVC's queue worker can die between two experiments (seen: its filesystem broker read an empty message
    and the worker exited after its task), leaving the rest queued with nothing to run them. When some are
    queued, none runs for ``stall_s`` and no worker answers, ``restart`` starts one.
    """
    seen: dict[str, str] = {}
    started = time.monotonic()
    stalled_since: float | None = None
    while True:
        status = queue_status(root)
        for name in names:
            state = status.get(name, "Missing")
            if seen.get(name) != state:
                seen[name] = state
                done = sum(1 for n in names if seen.get(n) in DONE)
                log.info("%s: %s (%d of %d done, %.0f s)", name, state, done, len(names), time.monotonic() - started)
        if all(seen[n] in DONE or seen[n] == "Missing" for n in names):
            return seen
        queued = sum(1 for n in names if seen[n] == "Queued")
        if restart is not None and queued and not any(seen[n] == "Running" for n in names):
            now = time.monotonic()
            stalled_since = stalled_since if stalled_since is not None else now
            if now - stalled_since >= stall_s and not queue_workers(root):
                log.warning("%d experiment(s) queued, none running for %.0f s and no DVC queue worker answers "
                            "(it may have died): starting one", queued, now - stalled_since)
                restart()
                stalled_since = None
        else:
            stalled_since = None
        time.sleep(poll_s)
