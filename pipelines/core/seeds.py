"""The curated seed tasks: real requests written by people, one folder each under ``data/seeds/``.

    data/seeds/<task id>/task.json    a Query without its workspace (id, source, domain, category, query,
                                      verifier, provenance)
    data/seeds/<task id>/workspace/   the files the agent starts from (a lone ``.keep`` means "empty")
    data/seeds/<task id>/solution/    files that, copied over the workspace, make every check pass

Synthesis reads them as examples of real queries; collect and the tests run them like any other task.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pydantic import ValidationError

from pipelines.core.errors import UserError, first_error
from pipelines.core.paths import relative_to_root, repo_root
from pipelines.core.schema import Query

SEEDS_DIR = repo_root() / "data" / "seeds"
#: Tasks in the same layout made from templates (``source: drill``; :mod:`pipelines.tools.drills`).
DRILLS_DIR = repo_root() / "data" / "drills"
# placeholders that keep empty folders in git; never part of what the agent sees
_IGNORED = shutil.ignore_patterns(".keep", "__pycache__")


def load_seed_tasks(directory: Path | str | None = None) -> list[Query]:
    """Every task under ``directory`` (default ``SEEDS_DIR``), validated, in folder-name order.

    Each query's ``workspace.dir`` is set to its ``workspace/`` folder, relative to the repository root
    when it lies inside it (absolute otherwise). Raises UserError naming the file and the field that is
    wrong, or the folder when its task.json or workspace is missing.
    """
    directory = Path(directory) if directory is not None else SEEDS_DIR
    if not directory.is_dir():
        raise UserError(f"{directory}: seed task directory not found")
    return [_load_task(folder) for folder in sorted(p for p in directory.iterdir() if p.is_dir())]


def _load_task(folder: Path) -> Query:
    path = folder / "task.json"
    if not path.is_file():
        raise UserError(f"{folder}: no task.json in this seed task folder")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(data).__name__}")
    if data.get("id") != folder.name:
        raise UserError(f"{path}: field id is {data.get('id')!r} but must equal the folder name {folder.name!r}")
    workspace = folder / "workspace"
    if not workspace.is_dir():
        raise UserError(f"{folder}: missing the workspace/ folder (put a .keep file in it when it is empty)")
    data["workspace"] = {**data.get("workspace", {}), "dir": relative_to_root(workspace)}
    if (folder / "solution").is_dir():  # lets the replay teacher collect a verified trajectory for it
        data["provenance"] = {**data.get("provenance", {}), "solution_dir": relative_to_root(folder / "solution")}
    try:
        return Query.model_validate(data)
    except ValidationError as exc:
        where, msg = first_error(exc)
        raise UserError(f"{path}: field {where}: {msg}") from None


def solution_dir(task_id: str, directory: Path | str | None = None) -> Path:
    """The ``solution/`` folder of seed task ``task_id``; raises UserError when it does not exist."""
    path = (Path(directory) if directory is not None else SEEDS_DIR) / task_id / "solution"
    if not path.is_dir():
        raise UserError(f"{path}: seed task {task_id!r} has no solution folder")
    return path


def apply_solution(task_id: str, dest: Path, directory: Path | str | None = None) -> Path:
    """Copy seed task ``task_id``'s reference solution over the workspace ``dest``; returns ``dest``."""
    shutil.copytree(solution_dir(task_id, directory), dest, dirs_exist_ok=True, ignore=_IGNORED)
    return Path(dest)
