"""Stage ``collect``: run the tool-using agent on every query and keep complete trajectories.

``python -m pipelines.collect [--out data/trajectories] [--user human] [--parallel N] [--limit N]``

Reads the curated seed tasks (``data/seeds``) and ``collect.query_files``; for each (query, teacher)
pair of ``collect.teachers`` it lays out the workspace, runs an episode in the sandbox with up to
``collect.rounds`` rounds of user feedback, and appends the finished record to
``data/trajectories/episodes.jsonl``, one line per episode, fsynced. Episodes are keyed by a hash
of the query record and the collection settings: a rerun skips those already done (resume), runs
those whose query or settings changed, and drops those whose query vanished.
Writes ``data/trajectories/report.json`` (counts by outcome, teacher, category, termination;
tokens; wall time) and logs an MLflow run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipelines import __version__
from pipelines.agent.loop import EpisodeResult, Limits, run_episode
from pipelines.agent.replay import ReplayTeacher
from pipelines.agent.sandbox.factory import make_sandbox
from pipelines.agent.tools import TOOL_SCHEMAS, Toolbox
from pipelines.agent.users import HumanUser, SimulatedUser
from pipelines.agent.verifiers import make_verifier
from pipelines.agent.workspace import DIFF_COMMAND, prepare_workspace, snapshot_files
from pipelines.core.console import main_guard, progress
from pipelines.core.errors import UserError
from pipelines.core.io import atomic_write_json, atomic_write_text
from pipelines.llm.roles import build_model, model_for_role
from pipelines.core.params import CollectParams, Params, load_params, params_hash
from pipelines.core.paths import repo_root
from pipelines.core.schema import Query, read_queries

log = logging.getLogger("pipelines.collect")
EPISODES_FILE = "episodes.jsonl"
PROMPT_VERSION = "agent-v1"


@dataclass
class Job:
    """One episode to run: a query and the teacher that collects on it."""

    query: Query
    teacher: str
    key: str


# ------------------------------------------------------------------ planning
def load_all_queries(params: CollectParams, root: Path) -> list[Query]:
    """Seed tasks (if enabled) plus every existing query file, ids unique across them."""
    queries: list[Query] = []
    if params.seeds:
        from pipelines.core.seeds import load_seed_tasks

        queries.extend(load_seed_tasks())
    for rel in params.query_files:
        path = root / rel
        if path.exists():
            queries.extend(read_queries(path))
        else:
            log.info("%s: not there (yet); skipped", rel)
    seen: set[str] = set()
    for q in queries:
        if q.id in seen:
            raise UserError(f"query id {q.id!r} appears in more than one source; ids must be unique")
        seen.add(q.id)
    return queries


def episode_key(query: Query, teacher: str, params: Params) -> str:
    """Hash of everything that shapes an episode: the query record, the teacher's spec, the settings."""
    c = params.collect
    teacher_spec = "replay" if teacher == "replay" else params.llm.models[teacher].model_dump(mode="json")
    settings = {
        "query": query.model_dump(mode="json"), "teacher": teacher, "teacher_spec": teacher_spec,
        "rounds": c.rounds, "user": c.user, "user_model": c.user_model, "limits": c.limits.model_dump(),
        "sampling": c.sampling.model_dump(), "sandbox": c.sandbox, "prompt": PROMPT_VERSION,
        "command_timeout_s": c.command_timeout_s, "memory_mb": c.memory_mb,
    }
    return params_hash(settings)


def plan_jobs(queries: list[Query], params: Params) -> list[Job]:
    """Every (query, teacher) pair the params ask for, in a stable order."""
    jobs: list[Job] = []
    for assignment in params.collect.teachers:
        picked = [q for q in queries if q.source in assignment.sources]
        if assignment.model == "replay":
            picked = [q for q in picked if has_reference(q)]
        if assignment.max_queries:
            picked = picked[: assignment.max_queries]
        jobs.extend(Job(q, assignment.model, episode_key(q, assignment.model, params)) for q in picked)
    return jobs


def has_reference(query: Query) -> bool:
    """Whether the replay teacher can solve ``query`` (a gold patch or a solution directory)."""
    return bool(query.verifier.patch) or bool(query.provenance.get("solution_dir"))


# ------------------------------------------------------------------ the episodes file
class TrajectoryWriter:
    """Append-only JSONL of finished episodes: one write + fsync per record, under a lock.

    On open it recovers from a kill: a torn last line is dropped, and records whose key is not in
    ``keep`` (their query or settings changed) are removed, by an atomic rewrite.
    """

    def __init__(self, path: Path, keep: set[str]):
        self.path = path
        self.lock = threading.Lock()
        self.done: dict[str, dict[str, Any]] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = path.read_text(encoding="utf-8").split("\n") if path.exists() else []
        kept, dropped, torn = [], 0, 0
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if lineno == len(lines):  # the episode in flight when the process died
                    torn += 1
                    continue
                raise UserError(f"{path}:{lineno}: corrupt trajectory record; fix or delete that line") from None
            key = record.get("meta", {}).get("episode_key")
            if key in keep and key not in self.done:
                self.done[key] = record
                kept.append(line)
            else:
                dropped += 1
        if dropped or torn or (lines and lines[-1] != ""):
            atomic_write_text(path, "".join(f"{line}\n" for line in kept))
            log.info("%s: kept %d episodes, dropped %d stale, %d torn", path, len(kept), dropped, torn)

    def append(self, record: dict[str, Any]) -> None:
        """Append one record whole, or not at all: on a failed or short write (disk full) the file is cut
        back to its previous end, so no torn line is left for later records to follow; the OSError is raised."""
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with self.lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                end = os.fstat(fd).st_size
                try:
                    written = 0
                    while written < len(data):  # a short write is followed by the real error (ENOSPC)
                        written += os.write(fd, data[written:])
                    os.fsync(fd)
                except OSError:
                    os.ftruncate(fd, end)
                    raise
            finally:
                os.close(fd)
            self.done[record["meta"]["episode_key"]] = record


# ------------------------------------------------------------------ one episode
class Collector:
    """Runs jobs with the stage's settings; shared by the CLI and tests."""

    def __init__(self, params: Params, root: Path, *, user_kind: str | None = None, human_io=None):
        self.params = params
        self.c = params.collect
        self.root = root
        self.user_kind = user_kind or self.c.user
        self.human_io = human_io or {}
        self.limits = Limits(max_steps=self.c.limits.max_steps, max_tokens=self.c.limits.max_tokens,
                             max_seconds=self.c.limits.max_seconds, max_format_errors=self.c.limits.max_format_errors,
                             max_rounds=self.c.rounds)
        if self.c.sandbox == "bwrap":
            from pipelines.agent.sandbox.bwrap import require_bwrap

            require_bwrap()
        else:
            log.warning("collect.sandbox is 'none': agent commands run unisolated on this machine")

    def model(self, teacher: str, query: Query, workspace: Path):
        if teacher != "replay":
            return build_model(teacher, self.params.llm.models[teacher])
        before = snapshot_files(workspace)
        after = dict(before)
        if query.verifier.patch:
            after = _apply_patch(workspace, query.verifier.patch, before)
        else:
            sol = self.root / query.provenance["solution_dir"]
            for path in sol.rglob("*"):
                if path.is_file() and path.name != ".keep":
                    after[str(path.relative_to(sol))] = path.read_text(encoding="utf-8")
        return ReplayTeacher(before, after, checks=query.verifier.commands[:3] if query.verifier.kind == "tests" else [])

    def user(self):
        if self.user_kind == "human":
            return HumanUser(**self.human_io)
        simulator = model_for_role(self.params.llm, "user_simulator") if self.c.user_model else None
        return SimulatedUser(simulator)

    def sandbox(self, workspace: Path):
        """The sandbox an episode's commands run in: the stage's limits, the repo's ``.dvc`` hidden."""
        return make_sandbox(self.c.sandbox, workspace, timeout_s=self.c.command_timeout_s, memory_mb=self.c.memory_mb,
                            **({"hide_paths": [self.root / ".dvc"]} if self.c.sandbox == "bwrap" else {}))

    def run(self, job: Job) -> dict[str, Any]:
        """Run one episode in a fresh workspace and return its record."""
        query = job.query
        started = time.time()
        workspace = Path(tempfile.mkdtemp(prefix=f"limi-ws-{query.id[:40]}-"))
        try:
            prepare_workspace(query, workspace, self.root)
            sandbox = self.sandbox(workspace)
            toolbox = Toolbox(workspace, sandbox)
            judge = model_for_role(self.params.llm, "judge") if query.verifier.kind == "rubric" else None
            verifier = make_verifier(query.verifier, sandbox, judge=judge, query=query.query)
            if query.verifier.kind == "reference_patch":
                verifier.diff_command = DIFF_COMMAND
            model = self.model(job.teacher, query, workspace)
            sampling = self.c.sampling.model_dump() if job.teacher != "replay" else {}
            result = run_episode(query.query, model, toolbox, verifier, self.user(), self.limits,
                                 sampling=sampling, workspace=workspace)
            diff = sandbox.run(DIFF_COMMAND, timeout_s=60).output
            return self.record(job, result, diff, started)
        finally:
            shutil.rmtree(workspace, ignore_errors=True)

    def record(self, job: Job, result: EpisodeResult, diff: str, started: float) -> dict[str, Any]:
        query = job.query
        teacher_backend = "replay" if job.teacher == "replay" else self.params.llm.models[job.teacher].backend
        meta = {
            "episode_key": job.key,
            "task_id": query.id, "source": query.source, "domain": query.domain, "category": query.category,
            "query": query.query,
            "teacher": job.teacher, "teacher_backend": teacher_backend,
            "sampling": self.c.sampling.model_dump() if job.teacher != "replay" else None,
            "user": self.user_kind, "rounds_used": result.rounds_used, "max_rounds": self.c.rounds,
            "first_round": _outcome(result.first_round), "final": _outcome(result.final, checks=True),
            "passed": result.passed, "human_verdict": result.human_verdict,
            "termination": result.termination, "error": result.error,
            "verifier": query.verifier.kind,
            "steps": result.steps, "tool_calls": result.tool_calls, "invalid_tool_calls": result.invalid_tool_calls,
            "format_errors": result.format_errors,
            "tokens": {"prompt": result.usage.prompt_tokens, "completion": result.usage.completion_tokens,
                       "cached": result.usage.cached_tokens, "cost_usd": result.usage.cost_usd},
            "timings": {"episode_s": round(result.seconds, 3), "total_s": round(time.time() - started, 3)},
            "final_diff": diff,
            "sandbox": {"kind": self.c.sandbox, "command_timeout_s": self.c.command_timeout_s,
                        "memory_mb": self.c.memory_mb},
            "prompt_version": PROMPT_VERSION,
            "versions": _versions(),
            "collected_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        return {"messages": result.messages, "tools": TOOL_SCHEMAS, "meta": meta}


def _outcome(result, checks: bool = False) -> dict[str, Any] | None:
    if result is None:
        return None
    out = {"passed": result.passed, "score": round(result.score, 4), "infra_error": result.infra_error}
    if checks:
        out["checks"] = [{"name": c.name[:200], "passed": c.passed, "output": c.output[-500:]} for c in result.checks]
    return out


def _apply_patch(workspace: Path, patch: str, before: dict[str, str]) -> dict[str, str]:
    """The files after applying ``patch`` to a scratch copy of the workspace (the agent never sees it)."""
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "w"
        shutil.copytree(workspace, scratch, symlinks=True)
        proc = subprocess.run(["git", "apply", "--whitespace=nowarn", "-"], cwd=scratch, input=patch, text=True,
                              capture_output=True)
        if proc.returncode != 0:
            raise UserError(f"the reference patch does not apply to the base commit: {proc.stderr.strip()[:200]}")
        return snapshot_files(scratch)


_VERSIONS: dict[str, str] | None = None


def _versions() -> dict[str, str]:
    global _VERSIONS
    if _VERSIONS is None:
        from importlib.metadata import PackageNotFoundError, version

        _VERSIONS = {"pipelines": __version__}
        for pkg in ("torch", "transformers"):
            try:
                _VERSIONS[pkg] = version(pkg)
            except PackageNotFoundError:
                pass
    return _VERSIONS


# ------------------------------------------------------------------ the report
def build_report(records: list[dict[str, Any]], planned: int, wall_s: float) -> dict[str, Any]:
    """Counts by outcome, teacher, category, termination; tokens; time. Adds up over resumed runs."""
    metas = [r["meta"] for r in records]
    outcome = Counter("infra_error" if m["termination"] == "infra_error" else ("passed" if m["passed"] else "failed")
                      for m in metas)
    by = lambda key: dict(Counter(str(m[key]) for m in metas))  # noqa: E731
    passed_by_teacher = dict(Counter(m["teacher"] for m in metas if m["passed"]))
    return {
        "episodes": len(metas), "planned": planned,
        "outcome": dict(outcome), "passed": outcome.get("passed", 0),
        "by_teacher": by("teacher"), "passed_by_teacher": passed_by_teacher,
        "by_category": by("category"), "by_source": by("source"), "by_termination": by("termination"),
        "first_round_passed": sum(1 for m in metas if (m.get("first_round") or {}).get("passed")),
        "tokens": {"prompt": sum(m["tokens"]["prompt"] for m in metas),
                   "completion": sum(m["tokens"]["completion"] for m in metas),
                   "cached": sum(m["tokens"].get("cached", 0) for m in metas)},
        "episode_seconds": round(sum(m["timings"]["episode_s"] for m in metas), 2),
        "wall_seconds_this_run": round(wall_s, 2),
    }


# ------------------------------------------------------------------ the stage
def collect(params: Params, root: Path, out_dir: Path, *, parallel: int | None = None, limit: int = 0,
            user_kind: str | None = None, human_io=None, tracker=None) -> dict[str, Any]:
    """Plan, resume, run and report; returns the report."""
    started = time.monotonic()
    queries = load_all_queries(params.collect, root)
    jobs = plan_jobs(queries, params)
    if limit:
        jobs = jobs[:limit]
    if not jobs:
        raise UserError("nothing to collect: no queries matched collect.teachers (check data/seeds, "
                        "collect.query_files and the teachers' sources)")
    writer = TrajectoryWriter(out_dir / EPISODES_FILE, {j.key for j in jobs})
    todo = [j for j in jobs if j.key not in writer.done]
    log.info("%d episodes planned, %d already done, %d to run", len(jobs), len(jobs) - len(todo), len(todo))
    collector = Collector(params, root, user_kind=user_kind, human_io=human_io)
    for teacher in sorted({j.teacher for j in todo} - {"replay"}):  # load once, before the threads start
        model = build_model(teacher, params.llm.models[teacher])
        if hasattr(model, "load"):
            model.load()
    workers = parallel or params.collect.parallel or os.cpu_count() or 1
    if collector.user_kind == "human":
        workers = 1  # one person, one transcript at a time
    failures: list[str] = []
    crashed: list[str] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(collector.run, job): job for job in todo}
        for future in progress(as_completed(futures), total=len(futures), desc="episodes", unit="ep"):
            job = futures[future]
            try:
                record = future.result()
            except UserError as exc:
                failures.append(f"{job.query.id}: {exc}")
                log.error("episode %s (%s) not recorded: %s", job.query.id, job.teacher, exc)
            except Exception as exc:  # a bug in one episode must not cost the others theirs
                crashed.append(f"{job.query.id} ({job.teacher}): {type(exc).__name__}: {exc}")
                log.exception("episode %s (%s) crashed", job.query.id, job.teacher)
            else:
                try:
                    writer.append(record)
                except OSError as exc:  # disk full, say: stop, rather than run episodes nobody can keep
                    for pending in futures:
                        pending.cancel()
                    raise UserError(f"{writer.path}: cannot record episode {job.query.id} ({exc.strerror or exc}); "
                                    f"the {len(writer.done)} episodes recorded before are intact; make room and "
                                    "rerun to resume") from None
    records = [writer.done[j.key] for j in jobs if j.key in writer.done]
    report = build_report(records, len(jobs), time.monotonic() - started)
    report["not_recorded"] = failures
    report["crashed"] = crashed
    atomic_write_json(out_dir / "report.json", report)
    if crashed:  # the finished episodes are kept; a rerun retries only these
        raise UserError(f"{len(crashed)} episodes crashed ({crashed[0]}); the other {report['episodes']} are "
                        f"recorded; rerun to retry the crashed ones")
    if tracker is not None:
        tracker.log_metrics({"episodes": report["episodes"], "passed": report["passed"],
                             "infra_errors": report["outcome"].get("infra_error", 0),
                             "prompt_tokens": report["tokens"]["prompt"],
                             "completion_tokens": report["tokens"]["completion"],
                             "cached_prompt_tokens": report["tokens"]["cached"],
                             "wall_seconds": report["wall_seconds_this_run"]})
        tracker.log_artifact(out_dir / "report.json")
    return report


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
