"""What every eval suite loads: :class:`EvalTask`, a held-out task whose :class:`Subtask` s the agent meets one
round at a time, in one workspace; laying out that workspace; the helpers the loaders share.

An :class:`EvalTask` carries its workspace and an ordered list of :class:`Subtask`: the request of each
round (subtask k+1 builds on subtask k's result) and how that round is checked.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.agent.workspace import prepare_workspace
from pipelines.core.errors import UserError
from pipelines.core.paths import repo_root
from pipelines.core.schema import Query, VerifierSpec, WorkspaceSpec
from pipelines.core.taxonomy import CATEGORIES, DOMAINS

_ID = re.compile(r"^[A-Za-z0-9_.:\-]+$")
IGNORED = shutil.ignore_patterns(".keep", "__pycache__")


@dataclass(frozen=True)
class Subtask:
    """One round: what the user asks for, and how the result of that round is checked."""

    query: str
    verifier: VerifierSpec


@dataclass(frozen=True)
class EvalTask:
    """A held-out task: subtasks in order, all worked in the one workspace laid out from ``workspace``.

    ``suite`` names the loader it came from; ``domain`` and ``category`` are the project's taxonomy;
    ``provenance`` says where it came from (its file, the source benchmark) and, for AgencyBench files,
    the gaps found while loading.
    """

    id: str
    suite: str
    domain: str
    category: str
    subtasks: list[Subtask]
    workspace: WorkspaceSpec = field(default_factory=WorkspaceSpec)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(f"eval task id {self.id!r} may only use letters, digits and _ . : -")
        if self.domain not in DOMAINS:
            raise ValueError(f"eval task {self.id}: domain {self.domain!r} is not one of {', '.join(DOMAINS)}")
        if self.category not in CATEGORIES:
            raise ValueError(f"eval task {self.id}: category {self.category!r} is not in the taxonomy")
        if not self.subtasks:
            raise ValueError(f"eval task {self.id} has no subtasks")

    def as_query(self, index: int = 0) -> Query:
        """Subtask ``index`` (0-based) as a :class:`Query`, for the agent harness and decontamination."""
        sub = self.subtasks[index]
        return Query(id=f"{self.id}:{index + 1}", source="human", domain=self.domain, category=self.category,
                     query=sub.query, workspace=self.workspace, verifier=sub.verifier,
                     provenance={"suite": self.suite, "subtask": index + 1, "subtasks": len(self.subtasks)})


def workspace_root(task: EvalTask) -> Path:
    """Where ``task``'s ``workspace.dir`` may be copied from: the repository root for a relative one; for an
    absolute one, the folder the user named (an AgencyBench download, say), and nothing outside it."""
    folder = task.workspace.dir
    return Path(folder).parent if folder and Path(folder).is_absolute() else repo_root()


def prepare_eval_workspace(task: EvalTask, dest: Path) -> Path:
    """Lay out ``task``'s starting workspace in the empty folder ``dest`` (under git, as collect does)."""
    return prepare_workspace(task.as_query(0), Path(dest), workspace_root(task))


def read_json_object(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
