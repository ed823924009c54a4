"""The ``easy`` suite: held-out tasks a small model can solve in one to three tool calls, in ``data/tasks/easy/``.

Create a file with given content, run a command and write down a value it prints, apply a one-line fix the
request names, rename a function, append a line: each task has one subtask (a few have two), checked by
commands in the sandbox. The tier sits below ``builtin`` so that a model too weak for the builtin tasks still
shows whether it can work the tools at all. Same layout and ``task.json`` format as the builtin suite
(:mod:`pipelines.evaluation.suites.builtin`); held apart from training like it (the seed tasks in
``data/seeds/`` are other tasks, and curate decontaminates against this suite).

    tasks = load_easy()
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipelines.core.paths import repo_root
from pipelines.evaluation.suites.builtin import folder_solution_dir, load_task_folders
from pipelines.evaluation.suites.common import IGNORED, EvalTask


def easy_dir() -> Path:
    """Where the easy tasks live: ``data/tasks/easy`` of the project root (task data, not package code)."""
    return repo_root() / "data" / "tasks" / "easy"


def load_easy(directory: Path | str | None = None) -> list[EvalTask]:
    """The easy tier's tasks under ``directory`` (default :func:`easy_dir`), in folder-name order.

    Raises UserError naming the file and field that is wrong, or the folder missing its task.json or
    workspace/.
    """
    return load_task_folders(Path(directory) if directory is not None else easy_dir(), "easy")


def easy_solution_dir(task_id: str, subtask: int, directory: Path | str | None = None) -> Path:
    """``solution/<subtask>/`` (1-based) of easy task ``task_id``; UserError when it does not exist."""
    return folder_solution_dir(Path(directory) if directory is not None else easy_dir(), task_id, subtask, "easy")


def apply_easy_solution(task_id: str, subtask: int, dest: Path, directory: Path | str | None = None) -> Path:
    """Copy subtask ``subtask``'s reference solution over the workspace ``dest``; returns ``dest``."""
    shutil.copytree(easy_solution_dir(task_id, subtask, directory), dest, dirs_exist_ok=True, ignore=IGNORED)
    return Path(dest)
