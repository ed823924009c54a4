"""One collect episode: the teacher (a model, or the replay of the task's reference solution) and the
user work the query through the harness; the session becomes a trajectory record."""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.agent.harness import AgentSource, Harness, Session
from pipelines.agent.replay import LimiReplay, ReplayTeacher, public_runs
from pipelines.agent.toolsets import tool_set
from pipelines.agent.traces import EpisodeTracer
from pipelines.agent.users import HumanUser, SimulatedUser, User
from pipelines.agent.verifiers import needs_judge
from pipelines.agent.workspace import snapshot_files
from pipelines.collection.plan import PROMPT_VERSION, Job
from pipelines.core.errors import UserError
from pipelines.core.params import Params
from pipelines.core.schema import Query, TrajectoryMeta
from pipelines.llm.roles import build_model, model_for_role

log = logging.getLogger(__name__)


@dataclass
class Attempt:
    """How one episode went: its record, or why there is none (``not_recorded``: a UserError, such as a
    workspace that cannot be laid out; ``crashed``: a bug, retried by the next run)."""

    job: Job
    record: dict[str, Any] | None = None
    not_recorded: str | None = None
    crashed: str | None = None


class Collector:
    """Runs jobs with the stage's settings; shared by the stage and tests.

    ``timings`` collects each episode's wall seconds by episode key: run-dependent figures that the stage
    reports to MLflow, never in a record.
    """

    def __init__(self, params: Params, root: Path, *, user_kind: str | None = None, human_io=None,
                 tracer: EpisodeTracer | None = None):
        self.params = params
        self.tracer = tracer  # writes each episode's MLflow trace (pipelines.agent.traces); None: no traces
        self.c = params.collect
        self.root = root
        self.user_kind = user_kind or self.c.user
        self.human_io = human_io or {}
        self.harness = Harness(self.c, hide_paths=[root / ".dvc"])
        self.timings: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def sandbox(self, workspace: Path):
        """The sandbox an episode's commands run in: the stage's limits, the repo's ``.dvc`` hidden."""
        return self.harness.sandbox(workspace)

    def teacher(self, job: Job) -> AgentSource:
        """The teacher's model, or for ``replay`` a factory that reads the reference off the laid-out workspace."""
        if job.teacher != "replay":
            return build_model(job.teacher, self.params.llm.models[job.teacher])
        if self.c.tool_set == "limi":  # the same plan, in the limi set's calls
            return lambda workspace: LimiReplay(replay_teacher(job.query, workspace, self.root), workspace)
        return lambda workspace: replay_teacher(job.query, workspace, self.root)

    def user(self) -> User:
        if self.user_kind == "human":
            return HumanUser(**self.human_io)
        simulator = model_for_role(self.params.llm, "user_simulator") if self.c.user_model else None
        return SimulatedUser(simulator, policy=self.c.feedback)

    def load_teachers(self, jobs: list[Job]) -> None:
        """Load the teachers' weights once, before the threads start."""
        for teacher in sorted({j.teacher for j in jobs} - {"replay"}):
            model = build_model(teacher, self.params.llm.models[teacher])
            if hasattr(model, "load"):
                model.load()

    def attempt(self, job: Job) -> Attempt:
        """:meth:`run`, with a failure turned into the Attempt's reason instead of an exception."""
        try:
            return Attempt(job, record=self.run(job))
        except UserError as exc:
            log.error("episode %s (%s) not recorded: %s", job.query.id, job.teacher, exc)
            return Attempt(job, not_recorded=f"{job.query.id}: {exc}")
        except Exception as exc:  # a bug in one episode must not cost the others theirs
            log.exception("episode %s (%s) crashed", job.query.id, job.teacher)
            return Attempt(job, crashed=f"{job.query.id} ({job.teacher}): {type(exc).__name__}: {exc}")

    def run(self, job: Job) -> dict[str, Any]:
        """Run one episode in a fresh workspace and return its record (a TrajectoryRecord as JSON)."""
        query = job.query
        judge = model_for_role(self.params.llm, "judge") if needs_judge(query.verifier) else None
        sampling = self.c.sampling.model_dump() if job.teacher != "replay" else None
        tape = self.tracer.tape() if self.tracer is not None else None
        trace = {"name": "episode", "query": query.query,
                 "tags": {"limi.task_id": query.id, "limi.teacher": job.teacher, "limi.episode_key": job.key,
                          "limi.source": query.source, "limi.category": query.category}}
        try:
            session = self.harness.run(query, self.teacher(job), self.user(), root=self.root, sampling=sampling,
                                       judge=judge, key=job.key, tape=tape)
        except Exception as exc:
            if tape is not None:
                self.tracer.record(tape, None, error=f"{type(exc).__name__}: {exc}", **trace)
            raise
        if tape is not None:
            self.tracer.record(tape, session, **trace)
        with self._lock:
            self.timings[job.key] = {"task_id": query.id, "teacher": job.teacher,
                                     "episode_s": round(sum(e.seconds for e in session.episodes), 3),
                                     "total_s": round(session.seconds, 3)}
        return self.record(job, session, sampling)

    def record(self, job: Job, session: Session, sampling: dict[str, Any] | None) -> dict[str, Any]:
        """The session as ``{"messages", "tools", "meta"}``, ``meta`` a :class:`TrajectoryMeta`."""
        query = job.query
        teacher_backend = "replay" if job.teacher == "replay" else self.params.llm.models[job.teacher].backend
        pr = query.provenance.get("pr")  # a PR task's key: curate drops it when an eval task has the same PR
        repo = query.provenance.get("repo") if pr else None  # and its repository, to group a PR task's records
        meta = TrajectoryMeta.model_validate({
            "episode_key": job.key, "task_id": query.id, "source": query.source, "domain": query.domain,
            "category": query.category, "query": query.query, **({"pr": pr} if pr else {}),
            **({"repo": repo} if repo else {}), "teacher": job.teacher,
            "teacher_backend": teacher_backend, **session.meta(self.c, sampling=sampling, user=self.user_kind),
            "verifier": query.verifier.kind, "prompt_version": PROMPT_VERSION,
            **({"verifier_reason": query.provenance["verifier_reason"]} if query.provenance.get("verifier_reason")
               else {}),
        })
        return {"messages": session.messages, "tools": tool_set(session.tool_set).schemas,
                "meta": meta.model_dump(mode="json", exclude_unset=True)}


def replay_teacher(query: Query, workspace: Path, root: Path) -> ReplayTeacher:
    """The replay teacher for ``query``: edits the laid-out ``workspace`` into the reference solution (the
    gold patch, or the files of ``provenance.solution_dir`` under ``root``) and runs what the request makes
    public (never the hidden checks: see :mod:`pipelines.agent.replay`), or the commands the task records as
    ``provenance.reference_runs`` (how a person finds what the request asks, for a request that names none).
    A PR task verified by its tests keeps only the code part as its gold patch, so the replay writes the code
    and the hidden tests check it."""
    before = snapshot_files(workspace)
    after = dict(before)
    if query.verifier.patch:
        after = _apply_patch(workspace, query.verifier.patch)
    else:
        solution = root / query.provenance["solution_dir"]
        for path in solution.rglob("*"):
            if path.is_file() and path.name != ".keep":
                after[str(path.relative_to(solution))] = path.read_text(encoding="utf-8")
    runs = list(query.provenance.get("reference_runs") or public_runs(query.query, before, after))
    return ReplayTeacher(before, after, runs=runs, current=lambda: snapshot_files(workspace))


def _apply_patch(workspace: Path, patch: str) -> dict[str, str]:
    """The files after applying ``patch`` to a scratch copy of the workspace (the agent never sees it)."""
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "w"
        shutil.copytree(workspace, scratch, symlinks=True)
        proc = subprocess.run(["git", "apply", "--whitespace=nowarn", "-"], cwd=scratch, input=patch, text=True,
                              capture_output=True)
        if proc.returncode != 0:
            raise UserError(f"the reference patch does not apply to the base commit: {proc.stderr.strip()[:200]}")
        return snapshot_files(scratch)
