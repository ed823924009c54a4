"""The boundary types, defined once and validated at every read.

- :class:`Query`: a task for the agent (``data/queries/*.jsonl``).
- trajectory records: ``{"messages": [...], "tools": [...], "meta": {...}}``, one JSON line per
  episode; ``messages``/``tools`` exactly in the public GAIR/LIMI dataset's OpenAI chat form
  (tool-call ``arguments`` as an object, tool results as ``role: tool`` with ``tool_call_id``).

Readers report the file and line of the first bad record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipelines.core.errors import UserError
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


class VerifierSpec(Record):
    """How an episode's result is checked.

    ``tests``: each command is one check, passing on exit status 0, run in the sandbox in the final
    workspace; the score is the share passing. ``reference_patch``: the workspace diff is compared with
    ``patch`` (files touched, changed lines); never shown to the agent. ``rubric``: the judge model
    scores ``criteria``. ``pass_threshold``: the score at or above which the episode counts as solved.
    """

    kind: Literal["tests", "reference_patch", "rubric"]
    commands: list[str] = Field(default_factory=list)
    timeout_s: float = Field(60.0, gt=0)
    patch: str | None = None
    criteria: list[str] = Field(default_factory=list)
    pass_threshold: float = Field(1.0, ge=0.0, le=1.0)

    @field_validator("commands")
    @classmethod
    def _non_empty(cls, commands: list[str]) -> list[str]:
        if any(not c.strip() for c in commands):
            raise ValueError("verifier commands must not be empty strings")
        return commands


class Query(Record):
    """A task: what the user asks, where the agent works, and how the result is verified."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:\-]+$")
    source: Literal["synthetic", "pr", "human"]
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
    """One chat message in the LIMI/OpenAI record form."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class TrajectoryRecord(BaseModel):
    """One episode: messages and tools in the dataset schema, plus ``meta`` (free-form but required)."""

    model_config = ConfigDict(extra="forbid")
    messages: list[Message] = Field(min_length=2)
    tools: list[dict[str, Any]] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)


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
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "(record)"
                raise UserError(f"{path}:{lineno}: {model.__name__} field {where}: {first['msg']}") from None


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
