"""The boundary types, defined once and validated at every read.

- :class:`Query`: a task for the agent (``data/queries/*.jsonl``).
- :class:`TrajectoryRecord`: ``{"messages": [...], "tools": [...], "meta": {...}}``, one JSON line per
  episode; ``messages``/``tools`` exactly in the public GAIR/LIMI dataset's OpenAI chat form
  (tool-call ``arguments`` as an object, tool results as ``role: tool`` with ``tool_call_id``);
  ``meta`` is a :class:`TrajectoryMeta` (what collect writes, ``data/trajectories``).
- :class:`EvalResult`: one eval trial as a trajectory record whose ``meta`` is an :class:`EvalMeta`
  (``data/eval/episodes.jsonl``); :class:`EvalMetrics`: ``metrics/eval.json``.

Every field of the written records has a default and unknown fields are kept, so a record of an older
version, or the public dataset's (no ``meta`` at all), still reads.

Readers report the file and line of the first bad record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Literal, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.core.errors import UserError, first_error
from pipelines.core.taxonomy import Category, Domain

M = TypeVar("M", bound=BaseModel)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkspaceSpec(Record):
    """How to lay out a task's starting workspace.

    ``files``: inline files (relative path -> text). ``dir``: a directory, relative to the repo root,
    copied first (inline files then override). ``git``: a repository path or URL checked out at
    ``commit`` (PR tasks: the PR's base commit).
    """

    files: dict[str, str] = Field(default_factory=dict)
    dir: str | None = None
    git: str | None = None
    commit: str | None = None

    @field_validator("files")
    @classmethod
    def _relative_paths(cls, files: dict[str, str]) -> dict[str, str]:
        for name in files:
            parts = Path(name).parts
            if Path(name).is_absolute() or ".." in parts or not parts:
                raise ValueError(f"workspace file {name!r} must be a relative path inside the workspace")
        return files


class PythonEnv(Record):
    """A Python virtual environment a task's commands run in (:mod:`pipelines.agent.pyenv`).

    ``packages`` are pip requirement specifiers (the repository's declared dependencies and pytest). The
    environment is built from the system's ``python3`` once per (Python version, packages), cached on the
    host and mounted read-only in the sandbox, its ``bin`` first on ``PATH``; the agent may use it too.
    """

    packages: list[str] = Field(min_length=1)

    @field_validator("packages")
    @classmethod
    def _specifiers(cls, packages: list[str]) -> list[str]:
        for spec in packages:
            if not spec.strip() or spec.strip().startswith("-"):
                raise ValueError(f"package {spec!r} is not a requirement specifier (pip options are not allowed)")
        return packages


class VerifierSpec(Record):
    """How an episode's result is checked.

    ``tests``: the PR's own tests, as SWE-bench checks a task, when ``fail_to_pass`` is set: the hidden
    ``test_patch`` is applied onto a scratch copy of the final workspace (the files it touches reset to the
    base first) and the listed pytest node ids run in ``env``; one check needs every ``fail_to_pass`` test
    (failed before the PR, passed after it) to pass, one more every ``pass_to_pass`` test (passed both
    times), if any. Then each of ``commands`` is one check, passing on exit status 0, run in the sandbox
    in the final workspace; the score is the share of checks passing.
    ``reference_patch``: the workspace diff is compared with ``patch``: by ``comparison: lines`` the files
    touched and changed lines (F1 of each), by ``comparison: judge`` the judge model, which scores how well
    the diff does what the reference does (0-10, with a reason); never shown to the agent.
    ``rubric``: the judge model scores ``criteria``, and its ``commands``, if any, are requirements checked
    by execution (run in the sandbox before the judge is asked, passing on exit status 0).
    ``pass_threshold``: the score at or above which the episode counts as solved.

    ``requirements``: one public sentence per check (a tests verifier: the fail-to-pass check, the
    pass-to-pass check if any, then one per command; a rubric: per criterion, then per command), in the
    task's own words and without expected values: what the simulated user says when that check fails.
    Empty, or shorter than the checks, and the rest get a generic sentence. Commands, expected values,
    criteria, the patch, the test patch and the test names are hidden material: only the verifier on the
    host reads them.
    """

    kind: Literal["tests", "reference_patch", "rubric"]
    commands: list[str] = Field(default_factory=list)
    timeout_s: float = Field(60.0, gt=0)
    patch: str | None = None
    comparison: Literal["lines", "judge"] = "lines"
    test_patch: str | None = None
    fail_to_pass: list[str] = Field(default_factory=list)
    pass_to_pass: list[str] = Field(default_factory=list)
    env: PythonEnv | None = None
    criteria: list[str] = Field(default_factory=list)
    pass_threshold: float = Field(1.0, ge=0.0, le=1.0)
    requirements: list[str] = Field(default_factory=list)

    def check_count(self) -> int:
        """How many checks the verifier reports (before a reference patch's comparison checks)."""
        if self.kind == "rubric":
            return len(self.criteria) + len(self.commands)
        if self.kind == "tests":
            return bool(self.fail_to_pass) + bool(self.pass_to_pass) + len(self.commands)
        return len(self.commands)

    @model_validator(mode="after")
    def _one_requirement_per_check(self) -> "VerifierSpec":
        # a rubric's commands are requirements checked by execution: its sentences cover the criteria first,
        # then the commands, in that order
        checks = self.check_count()
        if len(self.requirements) > checks:
            per = {"rubric": "criterion, then one per command",
                   "tests": "test group (fail-to-pass, pass-to-pass), then one per command"}.get(self.kind, "command")
            raise ValueError(f"requirements has {len(self.requirements)} sentences but the verifier has {checks} "
                             f"check(s): give one sentence per {per}")
        if any(not r.strip() for r in self.requirements):
            raise ValueError("requirements must not be empty strings")
        return self

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> "VerifierSpec":
        if (self.fail_to_pass or self.pass_to_pass or self.test_patch) and self.kind != "tests":
            raise ValueError("test_patch, fail_to_pass and pass_to_pass are for kind: tests")
        if self.pass_to_pass and not self.fail_to_pass:
            raise ValueError("pass_to_pass needs fail_to_pass: the PR's tests verify a task only when one of them "
                             "fails before the change and passes after it")
        if self.comparison == "judge" and self.kind != "reference_patch":
            raise ValueError("comparison: judge is for kind: reference_patch")
        if any(not t.strip() for t in (*self.fail_to_pass, *self.pass_to_pass)):
            raise ValueError("test ids must not be empty strings")
        return self

    @field_validator("commands")
    @classmethod
    def _non_empty(cls, commands: list[str]) -> list[str]:
        if any(not c.strip() for c in commands):
            raise ValueError("verifier commands must not be empty strings")
        return commands


class Query(Record):
    """A task: what the user asks, where the agent works, and how the result is verified."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:\-]+$")
    source: Literal["synthetic", "pr", "human", "drill"]
    domain: Domain
    category: Category
    query: str = Field(min_length=1)
    workspace: WorkspaceSpec = Field(default_factory=WorkspaceSpec)
    verifier: VerifierSpec
    provenance: dict[str, Any] = Field(default_factory=dict)


class ToolFunction(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    arguments: dict[str, Any]


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["function"] = "function"
    function: ToolFunction


class Message(BaseModel):
    """One chat message in the LIMI/OpenAI record form.

    ``reasoning_content``: an assistant turn's reasoning, when the model gave it apart from the answer (a
    reasoning endpoint's ``reasoning_content``/``reasoning``, or a local model's leading ``<think>`` block).
    It is never sent back to an endpoint; SFT hands it to the chat template, which renders it only if it
    reads it (the project's template as a ``<think>`` block).
    """

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None


class Open(BaseModel):
    """A written record: fields it does not know (an older or newer writer's) are kept, not rejected."""

    model_config = ConfigDict(extra="allow")


class CheckRecord(Open):
    """One check of a final verdict; ``method`` says how its requirement was decided: ``execution`` (a command
    run in the sandbox) or ``judge`` (the judge model); None in records written before it was kept."""

    name: str
    passed: bool
    output: str = ""
    method: str | None = None


class Verdict(Open):
    """A verification as recorded: passed, score in 0..1, why the verifier could not run; checks on ``final``."""

    passed: bool = False
    score: float = 0.0
    infra_error: str | None = None
    checks: list[CheckRecord] | None = None


class TokenCounts(Open):
    prompt: int = 0
    completion: int = 0
    cached: int = 0
    cost_usd: float = 0.0


class SandboxRecord(Open):
    kind: str = "bwrap"
    command_timeout_s: float = 30.0
    memory_mb: int = 1024


class TrajectoryMeta(Open):
    """What an episode record says about itself: task, teacher and settings, verdicts, counts, diff, versions.

    Only functions of the inputs: no timings, dates or host facts (those go to the run's MLflow record).
    ``pr`` is a PR task's pull request key (``repo#number``, its ``Query.provenance["pr"]``) and ``repo`` its
    repository (``Query.provenance["repo"]``); ``verifier`` is the task's verifier kind and ``verifier_reason``
    why a PR task got it (``Query.provenance["verifier_reason"]``); ``passed`` is the final verdict (or the person's,
    ``human_verdict``); ``feedback`` is the simulated user's policy (``requirements`` or ``none``; see
    :mod:`pipelines.agent.feedback`); ``rounds_used`` counts the first attempt as round 1;
    ``termination`` is one of ``pipelines.agent.loop.TERMINATIONS``; ``tool_set`` names the agent's tool set
    (:mod:`pipelines.agent.toolsets`) and is absent for the default set.
    """

    episode_key: str | None = None
    task_id: str = ""
    source: str = ""
    domain: str = ""
    category: str = ""
    query: str = ""
    pr: str | None = None
    repo: str | None = None
    teacher: str = ""
    teacher_backend: str | None = None
    sampling: dict[str, Any] | None = None
    user: str | None = None
    feedback: str | None = None
    rounds_used: int = 0
    max_rounds: int | None = None
    first_round: Verdict | None = None
    final: Verdict | None = None
    passed: bool = False
    human_verdict: Literal["accepted", "rejected"] | None = None
    termination: str | None = None
    error: str | None = None
    verifier: str | None = None
    verifier_reason: str | None = None
    steps: int = 0
    tool_calls: int = 0
    invalid_tool_calls: int = 0
    format_errors: int = 0
    tokens: TokenCounts = Field(default_factory=TokenCounts)
    final_diff: str = ""
    sandbox: SandboxRecord | None = None
    prompt_version: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    tool_set: str | None = None


class TrajectoryRecord(BaseModel):
    """One episode: messages and tools in the dataset schema, plus ``meta``."""

    model_config = ConfigDict(extra="forbid")
    messages: list[Message] = Field(min_length=2)
    tools: list[dict[str, Any]] = Field(default_factory=list)
    meta: TrajectoryMeta = Field(default_factory=TrajectoryMeta)


class SubtaskRecord(Open):
    """One subtask of an eval trial: its first-round and final verdicts, rounds used, how its episode ended."""

    number: int
    passed_first_round: bool = False
    passed: bool = False
    requirements: int = 1
    requirements_met_first_round: int = 0
    rounds_used: int = 0
    termination: str | None = None
    error: str | None = None
    first_round: Verdict | None = None
    final: Verdict | None = None
    steps: int = 0
    tool_calls: int = 0


class EvalMeta(TrajectoryMeta):
    """An eval trial's meta: ``teacher`` and ``model`` name the model under test; ``first_round``/``final``
    score the share of subtasks met; ``outcome`` is what the metrics read
    (:class:`pipelines.evaluation.metrics.EpisodeOutcome` without its seconds)."""

    suite: str = ""
    model: str = ""
    model_info: dict[str, Any] = Field(default_factory=dict)
    trial: int = 0
    subtasks_total: int = 1
    subtasks: list[SubtaskRecord] = Field(default_factory=list)
    outcome: dict[str, Any] = Field(default_factory=dict)
    system_prompt_sha: str | None = None


class EvalResult(TrajectoryRecord):
    """One eval trial as written to ``data/eval/episodes.jsonl``."""

    meta: EvalMeta = Field(default_factory=EvalMeta)


Score = Union[float, None]


class MetricsBlock(Open):
    """The metrics of one group of trials (``pipelines.evaluation.metrics.metrics_block``); rates on 0-100."""

    episodes: int | None = None
    scored_episodes: int | None = None
    infra_errors: int | None = None
    tasks: int | None = None
    R: int | None = None
    k: int | None = None
    ftfc: Score = None
    sr_at_r: Score = None
    rc_at_r: Score = None
    agencybench_average: Score = None
    pass_at_k: Score = None
    pass_hat_k: Score = None
    tasks_with_k_trials: int | None = None
    tool_call_validity: Score = None
    first_call_validity: Score = None
    finish_rate: Score = None
    mean_steps: Score = None
    mean_tokens: Score = None
    infra_error_rate: Score = None


class ModelMetrics(Open):
    overall: MetricsBlock
    categories: dict[str, MetricsBlock] = Field(default_factory=dict)


class Champion(Open):
    """Whether a tuned model beat the baseline on ``metric``, and under which MLflow model name and alias it is to
    be registered (``register_as``; None when not, ``not_registered`` says why). The version MLflow gives is a
    fact of the tracking store, not of the inputs: it is on the eval run (tag ``registry.version``), never here."""

    metric: str
    baseline: str
    baseline_value: Score = None
    candidates: dict[str, Score] = Field(default_factory=dict)
    differences: dict[str, dict[str, Any]] = Field(default_factory=dict)
    winner: str | None = None
    beats_baseline: bool = False
    register_as: dict[str, str] | None = None
    not_registered: str | None = None


class EvalMetrics(Open):
    """``metrics/eval.json``: per model overall and per category, the headline numbers with their 95%
    ``intervals``, their deltas against ``baseline`` with paired intervals (``comparisons``), per-suite
    blocks and paired comparisons (``suite_comparisons``), the champion decision and the protocol's sizes."""

    k: int
    models: dict[str, ModelMetrics] = Field(default_factory=dict)
    baseline: str | None = None
    main_metric: str | None = None
    headline: dict[str, dict[str, Score]] = Field(default_factory=dict)
    deltas: dict[str, dict[str, Score]] = Field(default_factory=dict)
    intervals: dict[str, dict[str, list[float] | None]] = Field(default_factory=dict)
    comparisons: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    suites: dict[str, dict[str, MetricsBlock]] = Field(default_factory=dict)
    #: per suite, what ``comparisons`` is overall: ``suite -> model -> metric -> {delta, interval, significant, tasks}``
    suite_comparisons: dict[str, dict[str, dict[str, dict[str, Any]]]] = Field(default_factory=dict)
    champion: Champion | None = None
    tasks: int | None = None
    trials: int | None = None
    R: int | None = None
    sampling: dict[str, Any] | None = None


def read_jsonl(path: str | Path, model: type[M] | None = None) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, record)`` from a JSON-lines file; blank lines are skipped.

    With ``model``, each line is validated into it. A bad line raises UserError naming file and line.
    """
    path = Path(path)
    try:
        fh = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            if model is None:
                yield lineno, data
                continue
            try:
                yield lineno, model.model_validate(data)
            except ValidationError as exc:
                where, msg = first_error(exc)
                raise UserError(f"{path}:{lineno}: {model.__name__} field {where}: {msg}") from None


def read_queries(path: str | Path) -> list[Query]:
    """All queries in a JSONL file, validated; duplicate ids are an error."""
    out: list[Query] = []
    seen: dict[str, int] = {}
    for lineno, query in read_jsonl(path, Query):
        if query.id in seen:
            raise UserError(f"{path}:{lineno}: duplicate query id {query.id!r} (first at line {seen[query.id]})")
        seen[query.id] = lineno
        out.append(query)
    return out


def read_trajectories(path: str | Path) -> list[dict[str, Any]]:
    """All trajectory records in a JSONL file, validated, returned as plain dicts."""
    return [rec.model_dump(mode="json", exclude_none=True) for _, rec in read_jsonl(path, TrajectoryRecord)]
