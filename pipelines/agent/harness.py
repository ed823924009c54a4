"""The episode harness: the one runner behind collect and eval.

    harness = Harness(params.collect, hide_paths=[root / ".dvc"])
    session = harness.run(query, model, SimulatedUser(), root=root, sampling=sampling)
    meta = session.meta(params.collect, sampling=sampling, user="simulated")

A session lays out the query's workspace in a fresh temp folder (under git), opens the sandbox and the
toolbox on it, builds each step's verifier and works the steps with :func:`run_episode` in one
conversation (collect: the query itself; eval: a task's subtasks in order, stopping at the first that
fails), takes the final diff and removes the workspace. :func:`run_pool` runs many sessions in threads
and returns their results in the order of the jobs, whatever order they finish in.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, TypeVar, Union

from pipelines import __version__
from pipelines.agent.config import HarnessParams
from pipelines.agent.loop import EpisodeResult, Limits, run_episode
from pipelines.agent.pyenv import ensure_env, env_sandbox_options
from pipelines.agent.sandbox.factory import make_sandbox
from pipelines.agent.tools import Toolbox
from pipelines.agent.toolsets import ToolSet, tool_set as get_tool_set
from pipelines.agent.traces import EpisodeTape
from pipelines.agent.users import User
from pipelines.agent.verifiers import RubricVerifier, Verifier, VerifierResult, make_verifier
from pipelines.agent.workspace import DIFF_COMMAND, prepare_workspace
from pipelines.core.console import progress
from pipelines.core.schema import CheckRecord, PythonEnv, Query, SandboxRecord, TokenCounts, Verdict, VerifierSpec
from pipelines.llm.base import ChatModel, Usage

log = logging.getLogger(__name__)
J = TypeVar("J")
R = TypeVar("R")
#: The agent of a session: a model, or a factory that builds it from the laid-out workspace (replay).
AgentSource = Union[ChatModel, Callable[[Path], ChatModel]]
VERSIONED_PACKAGES = ("torch", "transformers", "peft")


class Step(Protocol):
    """One request of a session and how its result is checked: a :class:`Query`, or an eval subtask."""

    query: str
    verifier: VerifierSpec


@dataclass
class Session:
    """What one harness run produced: an episode per step reached, the final diff, the wall time, and the
    name of the tool set the agent had."""

    episodes: list[EpisodeResult]
    diff: str
    seconds: float
    tool_set: str = "default"

    @property
    def last(self) -> EpisodeResult:
        return self.episodes[-1]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The whole conversation (each step continues the one before)."""
        return self.last.messages

    def usage(self) -> Usage:
        total = Usage()
        for episode in self.episodes:
            total.add(episode.usage)
        return total

    def total(self, counter: str) -> int:
        """``counter`` (steps, tool_calls, invalid_tool_calls, format_errors, finish_calls, missed_calls) summed
        over the episodes."""
        return sum(getattr(episode, counter) for episode in self.episodes)

    def meta(self, settings: HarnessParams, *, sampling: dict[str, Any] | None, user: str) -> dict[str, Any]:
        """The ``meta`` fields every record shares (see :class:`~pipelines.core.schema.TrajectoryMeta`);
        ``rounds_used``, ``first_round``, ``final`` and ``passed`` are the last episode's; ``tool_set`` is there
        only for a set other than the default, so the default set's records read as they did before sets."""
        last = self.last
        return {
            "sampling": sampling, "user": user, "feedback": settings.feedback if user == "simulated" else None,
            "rounds_used": last.rounds_used, "max_rounds": settings.rounds,
            "first_round": verdict(last.first_round), "final": verdict(last.final, checks=True),
            "passed": last.passed, "human_verdict": last.human_verdict,
            "termination": last.termination, "error": last.error,
            "steps": self.total("steps"), "tool_calls": self.total("tool_calls"),
            "invalid_tool_calls": self.total("invalid_tool_calls"), "format_errors": self.total("format_errors"),
            "tokens": token_counts(self.usage()), "final_diff": self.diff, "sandbox": sandbox_record(settings),
            "versions": versions(), **({"tool_set": self.tool_set} if self.tool_set != "default" else {}),
        }


def episode_workspace(task_id: str, key: str) -> Path:
    """A fresh, empty workspace folder at a path that is a function of the episode (``<tmp>/limi-ws/<task>-<key>``).

    The path shows up in what the agent sees (``pwd``, tracebacks in verifier feedback), so a random one
    would make reruns differ. If the path is taken (the same episode running elsewhere on this machine, or
    left behind by a killed run), a random sibling is used instead and the episode may read differently.
    """
    base = Path(tempfile.gettempdir()) / "limi-ws"
    base.mkdir(mode=0o755, exist_ok=True)
    name = f"{task_id[:40]}-{key[:12]}" if key else None
    if name:
        try:
            (base / name).mkdir(mode=0o700)
            return base / name
        except FileExistsError:
            log.warning("workspace %s is in use; this episode runs in a random folder instead", base / name)
    return Path(tempfile.mkdtemp(prefix=f"{task_id[:40]}-", dir=base))


class Harness:
    """Runs sessions under one set of :class:`HarnessParams`; safe to share between threads.

    ``hide_paths`` are host folders the sandbox must not show (answer sources, the DVC config): the
    sandbox mounts nothing of the host outside the workspace, so they matter only if one lies inside it;
    ``judge_sees_transcript`` shows a rubric judge the agent's last messages as well as its files.
    """

    def __init__(self, settings: HarnessParams, *, hide_paths: Sequence[Path] = (),
                 judge_sees_transcript: bool = False):
        self.settings = settings
        self.hide_paths = list(hide_paths)
        self.judge_sees_transcript = judge_sees_transcript
        self.limits = Limits(**settings.limits.model_dump(), max_rounds=settings.rounds)

    def sandbox(self, workspace: Path, env: PythonEnv | None = None):
        """The sandbox a session's commands run in: the settings' kind and limits, ``hide_paths`` hidden, and
        ``env`` (a task's Python environment, built first if the cache lacks it) read-only, first on PATH."""
        s = self.settings
        extra = env_sandbox_options(ensure_env(env), s.sandbox) if env is not None else {}
        return make_sandbox(s.sandbox, workspace, timeout_s=s.command_timeout_s, memory_mb=s.memory_mb,
                            hide_paths=self.hide_paths, **extra)

    def run(self, query: Query, agent: AgentSource, user: User, *, root: Path, steps: Sequence[Step] = (),
            sampling: dict[str, Any] | None = None, judge: ChatModel | None = None, key: str = "",
            tape: EpisodeTape | None = None, tool_set: str | None = None) -> Session:
        """Lay out ``query``'s workspace (``workspace.dir`` taken from ``root``), work ``steps`` (default: the
        query itself) in one conversation, stopping after a step that fails or breaks; remove the workspace.

        ``key`` (the episode's key) names the workspace, so the paths the agent sees are the same in every rerun.
        ``tape`` (see :mod:`pipelines.agent.traces`) notes every model call, tool call, verification and round
        of feedback for the episode's trace; its wrappers pass each call through unchanged.
        The first Python environment a step's verifier names is in the sandbox for the whole session.
        ``tool_set`` (default: the settings' ``tool_set``) names the tools the agent gets
        (:mod:`pipelines.agent.toolsets`).
        Raises UserError when the workspace cannot be laid out or its environment built; the agent's and the
        tools' troubles end the episode with a termination reason instead.
        """
        started = time.monotonic()
        work = list(steps) or [query]
        tools = get_tool_set(tool_set or self.settings.tool_set)
        workspace = episode_workspace(query.id, key)
        try:
            prepare_workspace(query, workspace, root)
            sandbox = self.sandbox(workspace, next((s.verifier.env for s in work if s.verifier.env), None))
            model = agent if hasattr(agent, "chat") else agent(workspace)
            toolbox = Toolbox(workspace, sandbox, tool_set=tools.name)
            if tape is not None:
                model, toolbox, user = tape.model(model), tape.toolbox(toolbox), tape.user(user)
            if self.judge_sees_transcript:
                model = _WatchedModel(model)
            episodes = self._work(work, model, toolbox, sandbox, user, sampling or {}, judge, tape, tools)
            diff = sandbox.run(DIFF_COMMAND, timeout_s=60).output
        finally:
            shutil.rmtree(workspace, ignore_errors=True)
            if tape is not None:
                tape.finish()
        return Session(episodes, diff, time.monotonic() - started, tools.name)

    def _work(self, steps: list[Step], model: ChatModel, toolbox: Toolbox, sandbox, user: User,
              sampling: dict[str, Any], judge: ChatModel | None, tape: EpisodeTape | None,
              tools: ToolSet) -> list[EpisodeResult]:
        episodes: list[EpisodeResult] = []
        history: list[dict[str, Any]] | None = None
        for number, step in enumerate(steps, 1):
            verifier = self._verifier(step, sandbox, judge, model)
            if tape is not None:
                tape.begin_step(number)
                verifier = tape.verifier(verifier)
            result = run_episode(step.query, model, toolbox, verifier, user, self.limits, sampling=sampling,
                                 workspace=toolbox.workspace, history=history, tools=tools.schemas,
                                 system_prompt=tools.system_prompt, format_hint=tools.format_hint)
            episodes.append(result)
            history = result.messages
            if result.termination == "infra_error" or not result.passed:
                break
        return episodes

    def _verifier(self, step: Step, sandbox, judge: ChatModel | None, model: ChatModel) -> Verifier:
        verifier = make_verifier(step.verifier, sandbox, judge=judge, query=step.query,
                                 evidence_tokens=self.settings.judge_evidence_tokens)
        if step.verifier.kind == "reference_patch":
            verifier.diff_command = DIFF_COMMAND  # the agent may have written .git/config: hardened git only
        if isinstance(verifier, RubricVerifier) and isinstance(model, _WatchedModel):
            return _RubricWithTranscript(verifier, model)
        return verifier


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
    """A rubric verifier that also shows the judge the conversation: the agent's report and the outputs of its
    last commands live there, not only in files (:mod:`pipelines.agent.evidence` picks and cuts them)."""

    def __init__(self, verifier: RubricVerifier, watched: _WatchedModel):
        self.verifier = verifier
        self.watched = watched

    def verify(self, workspace: Path) -> VerifierResult:
        self.verifier.messages = list(self.watched.messages)
        return self.verifier.verify(workspace)


# ------------------------------------------------------------------ record fields
def verdict(result: VerifierResult | None, checks: bool = False) -> Verdict | None:
    """A verifier result as recorded: score rounded, check names and outputs cut (with ``checks``).

    Each check's ``method`` is how its requirement was decided: a rubric's checks say it themselves (the
    judge, or execution for its commands), and so does a reference patch's judged comparison; every other
    check of a ``tests`` or ``reference_patch`` verifier is decided mechanically, by running commands and
    comparing their output, so ``execution``.
    """
    if result is None:
        return None
    found = Verdict(passed=result.passed, score=round(result.score, 4), infra_error=result.infra_error)
    if checks:
        found.checks = [CheckRecord(name=c.name[:200], passed=c.passed, output=c.output[-500:],
                                    method=c.method if result.kind in ("rubric", "reference_patch") else "execution")
                        for c in result.checks]
    return found


def token_counts(usage: Usage) -> TokenCounts:
    return TokenCounts(prompt=usage.prompt_tokens, completion=usage.completion_tokens, cached=usage.cached_tokens,
                       cost_usd=usage.cost_usd)


def sandbox_record(settings: HarnessParams) -> SandboxRecord:
    return SandboxRecord(kind=settings.sandbox, command_timeout_s=settings.command_timeout_s,
                         memory_mb=settings.memory_mb)


_VERSIONS: dict[str, str] | None = None


def versions() -> dict[str, str]:
    """Versions of this package and of the ML libraries that shape an episode (those installed)."""
    global _VERSIONS
    if _VERSIONS is None:
        from importlib.metadata import PackageNotFoundError, version

        found = {"pipelines": __version__}
        for pkg in VERSIONED_PACKAGES:
            try:
                found[pkg] = version(pkg)
            except PackageNotFoundError:
                pass
        _VERSIONS = found
    return dict(_VERSIONS)


# ------------------------------------------------------------------ many sessions
def check_sandbox(settings: HarnessParams, group: str) -> None:
    """Refuse (with the install command) when bubblewrap is asked for but does not work; warn for 'none'."""
    if settings.sandbox == "bwrap":
        from pipelines.agent.sandbox.bwrap import require_bwrap

        require_bwrap()
    else:
        log.warning("%s.sandbox is 'none': agent commands run unisolated on this machine", group)


def pool_size(settings: HarnessParams, jobs: int, override: int | None = None) -> int:
    """Threads for ``jobs`` sessions: ``override``, else ``settings.parallel``, else the CPUs; at most ``jobs``."""
    return max(1, min(override or settings.parallel or os.cpu_count() or 1, jobs))


def run_pool(jobs: Sequence[J], work: Callable[[J], R], *, workers: int, desc: str, unit: str,
             done: Callable[[J, R], None] | None = None) -> list[R]:
    """``work(job)`` for every job in ``workers`` threads; returns the results in the order of ``jobs``.

    ``done(job, result)`` runs in the calling thread as each job finishes (collect appends its record
    there, so a kill loses only what is in flight). An exception from ``work`` or ``done`` cancels the
    jobs not started, waits for the running ones, and propagates.
    """
    results: dict[int, R] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(work, job): i for i, job in enumerate(jobs)}
        try:
            for future in progress(as_completed(futures), total=len(futures), desc=desc, unit=unit):
                index = futures[future]
                results[index] = future.result()
                if done is not None:
                    done(jobs[index], results[index])
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return [results[i] for i in range(len(jobs))]
