"""Stage ``collect``: run the tool-using agent on every query and keep complete trajectories.

``python -m pipelines.collect [--out data/trajectories] [--user human] [--parallel N] [--limit N]``
``python -m pipelines.collect --shard I --of N --out data/shards/collect/I``   (stage ``collect_shard@I``)
``python -m pipelines.collect --merge --of N --out data/trajectories``         (stage ``collect``)

Reads the curated seed tasks (``data/seeds``) and ``collect.query_files``; for each (query, teacher)
pair of ``collect.teachers`` it lays out the workspace, runs an episode in the sandbox with up to
``collect.rounds`` rounds of user feedback, and appends the finished record to
``data/trajectories/episodes.jsonl``, one line per episode, fsynced. Episodes are keyed by a hash
of the query record and the collection settings: a rerun skips those already done (resume), runs
those whose query or settings changed, and drops those whose query vanished. At the end of a run the
file is rewritten in plan order.
Writes ``data/trajectories/report.json`` (counts by outcome, teacher, category, termination; tokens)
and logs an MLflow run (with the run's timings, which no output file holds).

Sharded (``collect.shards``, :mod:`pipelines.collection.shards`): shard I runs only the episodes whose key
hashes to it, journals them in ``data/shards/journal/collect-I.jsonl`` (its resume file, outside DVC's output,
so a rerun resumes while the output itself stays cacheable: DVC's run cache skips persistent outputs), takes
its finished episodes over from the last merged output and the other journals (a changed shard count
reruns nothing already done), and writes ``episodes.jsonl`` + ``report.json`` to its output folder. The merge
puts every shard's records in plan order into ``data/trajectories``: with one shard, the same bytes as an
unsharded run.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from pipelines.agent.harness import check_sandbox, pool_size, run_pool
from pipelines.collection.episode import Attempt, Collector
from pipelines.collection.plan import load_all_queries, plan_jobs
from pipelines.collection.report import build_report
from pipelines.collection.shards import earlier_records, journal_path, merge_shards, shard_jobs
from pipelines.collection.writer import EPISODES_FILE, TrajectoryWriter
from pipelines.core.console import main_guard
from pipelines.core.errors import UserError
from pipelines.core.io import atomic_write_json, atomic_write_text
from pipelines.core.params import Params, load_params
from pipelines.core.paths import repo_root

log = logging.getLogger("pipelines.collect")


def collect(params: Params, root: Path, out_dir: Path, *, parallel: int | None = None, limit: int = 0,
            user_kind: str | None = None, human_io=None, tracker=None, shard: int | None = None) -> dict[str, Any]:
    """Plan, resume, run and report; returns the report (``out_dir/report.json``).

    With ``shard``: only that shard's episodes (of ``collect.shards``), resumed from its journal."""
    started = time.monotonic()
    jobs = _planned(params, root)[: limit or None]
    if shard is not None:
        jobs = shard_jobs(jobs, shard, params.collect.shards)
        writer = _shard_writer(root, jobs, shard, params.collect.shards)
    else:
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
    records = writer.sort(j.key for j in jobs)
    report = build_report(records, len(jobs))
    report["not_recorded"] = [a.not_recorded for a in attempts if a.not_recorded]
    report["crashed"] = [a.crashed for a in attempts if a.crashed]
    if shard is not None:  # the journal stays where it is; the output gets what the merge reads
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / EPISODES_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
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


def _planned(params: Params, root: Path) -> list:
    jobs = plan_jobs(load_all_queries(params.collect, root), params)
    if not jobs:
        raise UserError("nothing to collect: no queries matched collect.teachers (check data/seeds, "
                        "collect.query_files and the teachers' sources)")
    return jobs


def _shard_writer(root: Path, jobs: list, shard: int, shards: int) -> TrajectoryWriter:
    """Shard ``shard``'s journal, resumed, plus the finished episodes of its slice found in the last merged
    output or another shard's journal (left by a different shard count or an unsharded run)."""
    path = journal_path(root, "collect", shard)
    writer = TrajectoryWriter(path, {j.key for j in jobs})
    others = [root / "data" / "trajectories" / EPISODES_FILE,
              *sorted(p for p in path.parent.glob("collect-*.jsonl") if p != path)]
    wanted = {j.key for j in jobs}
    adopted = 0
    for record in earlier_records(others):
        key = record["meta"].get("episode_key")
        if key in wanted and key not in writer.done:
            writer.append(record)
            adopted += 1
    if adopted:
        log.info("shard %d of %d: took over %d finished episodes from earlier runs", shard, shards, adopted)
    return writer


def merge(params: Params, root: Path, out_dir: Path) -> dict[str, Any]:
    """The ``collect`` stage when sharded: every shard's records in plan order and one report, in ``out_dir``
    (what an unsharded run writes there: byte-identical with one shard)."""
    jobs = _planned(params, root)
    records, reports = merge_shards(jobs, root, "collect", params.collect.shards, EPISODES_FILE)
    report = build_report(records, len(jobs))
    report["not_recorded"] = [item for r in reports for item in r.get("not_recorded", [])]
    report["crashed"] = [item for r in reports for item in r.get("crashed", [])]
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / EPISODES_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    atomic_write_json(out_dir / "report.json", report)
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
    parser.add_argument("--shard", type=int, help="run shard I of collect.shards only (stage collect_shard@I)")
    parser.add_argument("--merge", action="store_true", help="merge the shards' outputs into --out (stage collect)")
    parser.add_argument("--of", type=int, help="the shard count dvc.yaml was generated for (must equal collect.shards)")
    args = parser.parse_args()
    root = repo_root()
    params = load_params()
    out = Path(args.out) if Path(args.out).is_absolute() else root / args.out
    if args.of is not None and args.of != params.collect.shards:
        raise UserError(f"params.yaml: collect.shards is {params.collect.shards} but this stage was generated for "
                        f"{args.of}; regenerate dvc.yaml with `python -m pipelines.tools.stage_deps --write`")
    if args.merge:
        report = merge(params, root, out)
        log.info("merged %d shards: %d episodes, %d passed; report: %s", params.collect.shards,
                 report["episodes"], report["passed"], out / "report.json")
        return 0
    from pipelines.core.tracking import stage_run

    tags = None if args.shard is None else {"limi.shard": f"{args.shard}/{params.collect.shards}"}
    with stage_run("collect", params.group("collect"), tags=tags) as run:
        report = collect(params, root, out, parallel=args.parallel, limit=args.limit, user_kind=args.user,
                         tracker=run, shard=args.shard)
    log.info("collected %d episodes: %s; %d passed verification; report: %s", report["episodes"],
             report["outcome"], report["passed"], out / "report.json")
    return 0


if __name__ == "__main__":
    main_guard(main)
