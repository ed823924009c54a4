"""Stage ``collect``: run the tool-using agent on every query and keep complete trajectories.

``python -m pipelines.collect [--out data/trajectories] [--user human] [--parallel N] [--limit N]``

Reads the curated seed tasks (``data/seeds``) and ``collect.query_files``; for each (query, teacher)
pair of ``collect.teachers`` it lays out the workspace, runs an episode in the sandbox with up to
``collect.rounds`` rounds of user feedback, and appends the finished record to
``data/trajectories/episodes.jsonl``, one line per episode, fsynced. Episodes are keyed by a hash
of the query record and the collection settings: a rerun skips those already done (resume), runs
those whose query or settings changed, and drops those whose query vanished. At the end of a run the
file is rewritten in plan order.
Writes ``data/trajectories/report.json`` (counts by outcome, teacher, category, termination; tokens)
and logs an MLflow run (with the run's timings, which no output file holds).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from pipelines.agent.harness import check_sandbox, pool_size, run_pool
from pipelines.collection.episode import Attempt, Collector
from pipelines.collection.plan import load_all_queries, plan_jobs
from pipelines.collection.report import build_report
from pipelines.collection.writer import EPISODES_FILE, TrajectoryWriter
from pipelines.core.console import main_guard
from pipelines.core.errors import UserError
from pipelines.core.io import atomic_write_json
from pipelines.core.params import Params, load_params
from pipelines.core.paths import repo_root

log = logging.getLogger("pipelines.collect")


def collect(params: Params, root: Path, out_dir: Path, *, parallel: int | None = None, limit: int = 0,
            user_kind: str | None = None, human_io=None, tracker=None) -> dict[str, Any]:
    """Plan, resume, run and report; returns the report (``out_dir/report.json``)."""
    started = time.monotonic()
    jobs = plan_jobs(load_all_queries(params.collect, root), params)[: limit or None]
    if not jobs:
        raise UserError("nothing to collect: no queries matched collect.teachers (check data/seeds, "
                        "collect.query_files and the teachers' sources)")
    writer = TrajectoryWriter(out_dir / EPISODES_FILE, {j.key for j in jobs})
    todo = [j for j in jobs if j.key not in writer.done]
    log.info("%d episodes planned, %d already done, %d to run", len(jobs), len(jobs) - len(todo), len(todo))
    check_sandbox(params.collect, "collect")
    from pipelines.agent.traces import EpisodeTracer

    tracer = EpisodeTracer.for_stage(tracker, "collect")  # each episode an MLflow trace, when a run records
    collector = Collector(params, root, user_kind=user_kind, human_io=human_io, tracer=tracer)
    collector.load_teachers(todo)
    workers = 1 if collector.user_kind == "human" else pool_size(params.collect, len(todo), parallel)
    attempts = run_pool(todo, collector.attempt, workers=workers, desc="episodes", unit="ep",
                        done=lambda job, attempt: _keep(writer, attempt))
    report = build_report(writer.sort(j.key for j in jobs), len(jobs))
    report["not_recorded"] = [a.not_recorded for a in attempts if a.not_recorded]
    report["crashed"] = [a.crashed for a in attempts if a.crashed]
    atomic_write_json(out_dir / "report.json", report)
    if report["crashed"]:  # the finished episodes are kept; a rerun retries only these
        raise UserError(f"{len(report['crashed'])} episodes crashed ({report['crashed'][0]}); the other "
                        f"{report['episodes']} are recorded; rerun to retry the crashed ones")
    if tracker is not None:
        tracker.log_metrics({"episodes": report["episodes"], "passed": report["passed"],
                             "infra_errors": report["outcome"].get("infra_error", 0),
                             "prompt_tokens": report["tokens"]["prompt"],
                             "completion_tokens": report["tokens"]["completion"],
                             "cached_prompt_tokens": report["tokens"]["cached"]})
        tracker.log_artifact(out_dir / "report.json")
        tracker.record_timings({"wall_seconds": round(time.monotonic() - started, 2),
                                "episodes": [{"episode_key": key, **collector.timings[key]}
                                             for key in sorted(collector.timings)]}, root=root)
    return report


def _keep(writer: TrajectoryWriter, attempt: Attempt) -> None:
    """Append a finished episode's record; on a full disk stop the run (a rerun resumes from there)."""
    if attempt.record is None:
        return
    try:
        writer.append(attempt.record)
    except OSError as exc:  # disk full, say: stop, rather than run episodes nobody can keep
        raise UserError(f"{writer.path}: cannot record episode {attempt.job.query.id} ({exc.strerror or exc}); "
                        f"the {len(writer.done)} episodes recorded before are intact; make room and "
                        "rerun to resume") from None


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.collect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/trajectories", help="output directory (default: data/trajectories)")
    parser.add_argument("--user", choices=["simulated", "human"], help="override collect.user")
    parser.add_argument("--parallel", type=int, help="override collect.parallel")
    parser.add_argument("--limit", type=int, default=0, help="run at most N of the planned episodes (0 = all)")
    args = parser.parse_args()
    root = repo_root()
    params = load_params()
    out = Path(args.out) if Path(args.out).is_absolute() else root / args.out
    from pipelines.core.tracking import stage_run

    with stage_run("collect", params.group("collect")) as run:
        report = collect(params, root, out, parallel=args.parallel, limit=args.limit, user_kind=args.user,
                         tracker=run)
    log.info("collected %d episodes: %s; %d passed verification; report: %s", report["episodes"],
             report["outcome"], report["passed"], out / "report.json")
    return 0


if __name__ == "__main__":
    main_guard(main)
