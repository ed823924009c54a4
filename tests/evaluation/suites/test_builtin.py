"""The builtin eval suite loaded for real: its tasks' checks run in bubblewrap against their reference
solutions, and they share nothing with the training seeds."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from pipelines.agent.sandbox.factory import make_sandbox
from pipelines.core.errors import UserError
from pipelines.core.seeds import load_seed_tasks
from pipelines.core.taxonomy import CATEGORIES, CATEGORY_DOMAIN
from pipelines.evaluation.suites.builtin import apply_builtin_solution, builtin_dir, builtin_solution_dir, load_builtin
from pipelines.evaluation.suites.common import EvalTask, prepare_eval_workspace
from tests.conftest import REPO

needs_bwrap = pytest.mark.needs_bwrap
BUILTIN = load_builtin()


def exit_codes(workspace: Path, commands: list[str]) -> list[int]:
    sandbox = make_sandbox("bwrap", workspace, timeout_s=60)
    return [sandbox.run(command).exit_code for command in commands]


def test_builtin_suite_shape():
    assert len(BUILTIN) >= 12
    assert len({t.id for t in BUILTIN}) == len(BUILTIN)
    assert {t.domain for t in BUILTIN} == {"software", "research"}
    assert sum(t.domain == "research" for t in BUILTIN) >= 4
    for task in BUILTIN:
        assert task.suite == "builtin" and task.category in CATEGORIES
        assert task.domain == CATEGORY_DOMAIN[task.category], task.id
        assert 2 <= len(task.subtasks) <= 3, task.id
        assert all(s.verifier.kind == "tests" and s.verifier.commands for s in task.subtasks), task.id
        assert (REPO / task.workspace.dir).is_dir(), task.workspace.dir
        for k in range(1, len(task.subtasks) + 1):
            assert builtin_solution_dir(task.id, k).is_dir()
        assert task.as_query(len(task.subtasks) - 1).id == f"{task.id}:{len(task.subtasks)}"


def _shingles(text: str, n: int = 8) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_builtin_tasks_are_not_the_training_seeds():
    seeds = load_seed_tasks(REPO / "data" / "seeds")
    seed_shingles = set().union(*(_shingles(q.query) for q in seeds))
    seed_files = {p.read_bytes() for q in seeds for p in (REPO / q.workspace.dir).rglob("*") if p.is_file()} - {b""}
    for task in BUILTIN:
        assert task.id not in {q.id for q in seeds}
        for sub in task.subtasks:
            shared = _shingles(sub.query) & seed_shingles
            assert not shared, f"{task.id} shares wording with a seed task: {' '.join(next(iter(shared)))}"
        start = (REPO / task.workspace.dir).rglob("*")
        reused = [p.name for p in start if p.is_file() and p.read_bytes() in seed_files]
        assert not reused, f"{task.id} starts from files of a seed task: {reused}"


@needs_bwrap
@pytest.mark.parametrize("task", BUILTIN, ids=lambda t: t.id)
def test_builtin_checks_fail_before_and_pass_after_each_solution(task: EvalTask, tmp_path):
    workspace = prepare_eval_workspace(task, tmp_path / "ws")
    for k, sub in enumerate(task.subtasks, 1):
        before = exit_codes(workspace, sub.verifier.commands)
        # every check tests something this subtask adds, so each one fails on the previous state
        assert all(code != 0 for code in before), f"subtask {k}: checks already passing before its solution: {before}"
        apply_builtin_solution(task.id, k, workspace)
        after = exit_codes(workspace, sub.verifier.commands)
        assert after == [0] * len(after), f"subtask {k}: checks failing after its solution: {after}"


def test_builtin_loader_reports_bad_folders(tmp_path):
    good = builtin_dir() / BUILTIN[0].id
    shutil.copytree(good, tmp_path / "renamed")
    with pytest.raises(UserError, match=r"renamed.*task\.json: field id"):
        load_builtin(tmp_path)
    shutil.rmtree(tmp_path / "renamed")
    shutil.copytree(good, tmp_path / BUILTIN[0].id)
    shutil.rmtree(tmp_path / BUILTIN[0].id / "workspace")
    with pytest.raises(UserError, match="missing the workspace/ folder"):
        load_builtin(tmp_path)
    (tmp_path / BUILTIN[0].id / "workspace").mkdir()
    data = json.loads((good / "task.json").read_text())
    data["subtasks"][1]["verifier"] = {"kind": "tests", "commands": [""]}
    (tmp_path / BUILTIN[0].id / "task.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match="subtask 2 verifier field commands"):
        load_builtin(tmp_path)
