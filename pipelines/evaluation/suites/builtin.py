"""The ``builtin`` suite: the project's held-out tasks, kept with the other hidden task data in ``data/tasks/builtin/``.

``builtin/<task id>/`` holds ``task.json`` (id, domain, category, subtasks, provenance), ``workspace/`` (the
starting files) and ``solution/<k>/`` (files that, copied over the workspace after solutions 1..k-1, make
subtask k's checks pass; for tests only). Checks are shell commands run in the sandbox with the workspace
as working directory.

    tasks = load_builtin()
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import ValidationError

from pipelines.core.errors import UserError
from pipelines.core.schema import VerifierSpec, WorkspaceSpec
from pipelines.core.paths import relative_to_root, repo_root
from pipelines.evaluation.suites.common import IGNORED, EvalTask, Subtask, read_json_object



def builtin_dir() -> Path:
    """Where the builtin tasks live: ``data/tasks/builtin`` of the project root (task data, not package code)."""
    return repo_root() / "data" / "tasks" / "builtin"


def load_builtin(directory: Path | str | None = None) -> list[EvalTask]:
    """The project's held-out tasks under ``directory`` (default :func:`builtin_dir`), in folder-name order.

    Raises UserError naming the file and field that is wrong, or the folder missing its task.json or
    workspace/.
    """
    return load_task_folders(Path(directory) if directory is not None else builtin_dir(), "builtin")


def load_task_folders(directory: Path, suite: str) -> list[EvalTask]:
    """Every ``<task id>/`` folder under ``directory`` in the layout above, as tasks of ``suite``, in
    folder-name order (the loader the ``builtin`` and ``easy`` suites share)."""
    if not directory.is_dir():
        raise UserError(f"{directory}: {suite} eval task directory not found (run from the project's checkout, "
                        "or set LIMI_ROOT to it)")
    return [_load_folder_task(folder, suite) for folder in sorted(p for p in directory.iterdir() if p.is_dir())]


def _load_folder_task(folder: Path, suite: str) -> EvalTask:
    path = folder / "task.json"
    data = read_json_object(path)
    if data.get("id") != folder.name:
        raise UserError(f"{path}: field id is {data.get('id')!r} but must equal the folder name {folder.name!r}")
    if not (folder / "workspace").is_dir():
        raise UserError(f"{folder}: missing the workspace/ folder (put a .keep file in it when it is empty)")
    raw_subtasks = data.get("subtasks")
    if not isinstance(raw_subtasks, list) or not raw_subtasks:
        raise UserError(f"{path}: field subtasks must be a non-empty list of {{query, verifier}} objects")
    subtasks = []
    for number, item in enumerate(raw_subtasks, 1):
        if not isinstance(item, dict) or not str(item.get("query") or "").strip():
            raise UserError(f"{path}: subtask {number} needs a non-empty query")
        try:
            verifier = VerifierSpec.model_validate(item.get("verifier"))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(object)"
            raise UserError(f"{path}: subtask {number} verifier field {where}: {first['msg']}") from None
        subtasks.append(Subtask(item["query"], verifier))
    provenance = {**data.get("provenance", {}), "file": relative_to_root(path)}
    try:
        return EvalTask(id=data["id"], suite=suite, domain=data.get("domain", ""),
                        category=data.get("category", ""), subtasks=subtasks,
                        workspace=WorkspaceSpec(dir=relative_to_root(folder / "workspace")), provenance=provenance)
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from None


def builtin_solution_dir(task_id: str, subtask: int, directory: Path | str | None = None) -> Path:
    """``solution/<subtask>/`` (1-based) of builtin task ``task_id``; UserError when it does not exist."""
    return folder_solution_dir(Path(directory) if directory is not None else builtin_dir(), task_id, subtask, "builtin")


def folder_solution_dir(directory: Path, task_id: str, subtask: int, suite: str) -> Path:
    """``<directory>/<task_id>/solution/<subtask>/``; UserError naming ``suite`` when it does not exist."""
    path = directory / task_id / "solution" / str(subtask)
    if not path.is_dir():
        raise UserError(f"{path}: {suite} task {task_id!r} has no reference solution for subtask {subtask}")
    return path


def apply_builtin_solution(task_id: str, subtask: int, dest: Path, directory: Path | str | None = None) -> Path:
    """Copy subtask ``subtask``'s reference solution over the workspace ``dest``; returns ``dest``."""
    shutil.copytree(builtin_solution_dir(task_id, subtask, directory), dest, dirs_exist_ok=True, ignore=IGNORED)
    return Path(dest)
