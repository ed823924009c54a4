"""Eval suites loaded for real: the builtin tasks' checks run in bubblewrap against their reference solutions,
HumanEval from the installed package, and the AgencyBench v1 files shipped in shared/data."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import pytest

from pipelines.agent.loop import Limits, run_episode
from pipelines.agent.sandbox.bwrap import INSTALL_HINT, BwrapSandbox
from pipelines.agent.sandbox.factory import make_sandbox
from pipelines.agent.tools import Toolbox
from pipelines.agent.users import SimulatedUser
from pipelines.agent.verifiers import TestsVerifier
from pipelines.core.errors import UserError
from pipelines.evaluation.suites import (
    BUILTIN_DIR, EvalTask, agencybench_category, apply_builtin_solution, builtin_solution_dir, load_agencybench,
    load_builtin, load_humaneval, load_suite, prepare_eval_workspace)
from pipelines.llm.scripted import ScriptedModel
from pipelines.core.seeds import load_seed_tasks
from pipelines.core.taxonomy import CATEGORIES, CATEGORY_DOMAIN

REPO = Path(__file__).resolve().parents[1]
AGENCYBENCH = Path("/work/shared/data/agencybench-v1")
needs_bwrap = pytest.mark.skipif(not BwrapSandbox.available(), reason=f"bubblewrap missing: {INSTALL_HINT}")
needs_agencybench = pytest.mark.skipif(not AGENCYBENCH.is_dir(), reason=f"{AGENCYBENCH} not present")
BUILTIN = load_builtin()


def exit_codes(workspace: Path, commands: list[str]) -> list[int]:
    sandbox = make_sandbox("bwrap", workspace, timeout_s=60)
    return [sandbox.run(command).exit_code for command in commands]


# --- builtin ------------------------------------------------------------------------------------------

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
    good = BUILTIN_DIR / BUILTIN[0].id
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


# --- HumanEval ----------------------------------------------------------------------------------------

HUMANEVAL = load_humaneval()


def test_humaneval_loads_all_164_problems():
    assert len(HUMANEVAL) == 164 and len({t.id for t in HUMANEVAL}) == 164
    first = HUMANEVAL[0]
    assert first.id == "humaneval-0" and first.provenance["task_id"] == "HumanEval/0"
    assert first.workspace.files["problem.py"] in first.subtasks[0].query
    assert "solution.py" in first.subtasks[0].query and "has_close_elements" in first.subtasks[0].query
    assert first.provenance["canonical_solution"] not in first.subtasks[0].query
    assert [t.id for t in load_humaneval(limit=3)] == ["humaneval-0", "humaneval-1", "humaneval-2"]
    assert [t.id for t in load_suite("humaneval", limit=2)] == ["humaneval-0", "humaneval-1"]


def _solved(task: EvalTask, body: str) -> str:
    return task.workspace.files["problem.py"] + body


@needs_bwrap
@pytest.mark.parametrize("index", [0, 32, 38])  # 32 and 38: the tests call helpers defined in the problem text
def test_humaneval_canonical_solution_passes_and_wrong_one_fails(index, tmp_path):
    task = HUMANEVAL[index]
    workspace = prepare_eval_workspace(task, tmp_path / "ws")
    assert (workspace / "problem.py").read_text() == task.workspace.files["problem.py"]
    check = task.subtasks[0].verifier.commands
    (workspace / "solution.py").write_text(_solved(task, task.provenance["canonical_solution"]))
    assert exit_codes(workspace, check) == [0]
    (workspace / "solution.py").write_text(_solved(task, "    return None\n"))
    assert exit_codes(workspace, check) != [0]
    (workspace / "solution.py").unlink()
    assert exit_codes(workspace, check) != [0]


def _write_and_finish(content: str) -> list[dict]:
    def call(name, **arguments):
        return {"content": "", "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}]}
    return [call("write_file", path="solution.py", content=content), call("finish", summary="wrote solution.py")]


@needs_bwrap
@pytest.mark.parametrize("correct", [True, False], ids=["canonical", "wrong"])
def test_humaneval_through_the_agent_loop(correct, tmp_path):
    task = HUMANEVAL[0]
    workspace = prepare_eval_workspace(task, tmp_path / "ws")
    sandbox = make_sandbox("bwrap", workspace, timeout_s=60)
    body = task.provenance["canonical_solution"] if correct else "    return False\n"
    model = ScriptedModel(_write_and_finish(_solved(task, body)))
    result = run_episode(task.subtasks[0].query, model, Toolbox(workspace, sandbox),
                         TestsVerifier(task.subtasks[0].verifier, sandbox), SimulatedUser(), Limits(max_rounds=1),
                         workspace=workspace)
    assert result.termination == "finished" and result.rounds_used == 1 and result.invalid_tool_calls == 0
    assert result.passed is correct and result.first_round.passed is correct
    assert model.requests[0]["messages"][1]["content"] == task.subtasks[0].query


# --- AgencyBench v1 -----------------------------------------------------------------------------------

@needs_agencybench
def test_agencybench_loads_all_ten_files():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tasks = load_agencybench(AGENCYBENCH)
    assert [t.id for t in tasks] == [f"agencybench-task{n}" for n in range(1, 11)]
    for task in tasks:
        source = json.loads(Path(task.provenance["file"]).read_text())
        assert len(task.subtasks) == source["metadata"]["subtask_count"], task.id
        assert task.provenance["agencybench_categories"] == source["metadata"]["categories"]
        assert task.suite == "agencybench" and task.domain == CATEGORY_DOMAIN[task.category]
        for sub in task.subtasks:
            assert sub.verifier.kind == "rubric" and sub.verifier.criteria and sub.query.strip(), task.id
        task.as_query(0)  # a valid Query for the harness
    # task8's loss thresholds are blank in the source: loaded, with one warning naming the file
    assert len(caught) == 1 and "Task8_Scientific_System_Function_Discovery.json" in str(caught[0].message)
    assert "blank threshold" in str(caught[0].message)
    by_id = {t.id: t for t in tasks}
    assert len(by_id["agencybench-task8"].provenance["warnings"]) == 4


@needs_agencybench
def test_agencybench_subtask_text_and_criteria():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tasks = {t.id: t for t in load_agencybench(AGENCYBENCH)}
    chat = tasks["agencybench-task1"]
    assert chat.subtasks[0].query.startswith("Project: Advanced C++ Console Chat System")  # the preamble goes first
    assert chat.subtasks[1].query.startswith("Subtask 2: Friend Management")
    assert "General Rules" not in chat.subtasks[1].query
    assert chat.subtasks[1].verifier.criteria == [
        "Able to add/remove friends, and the friend list persists across program restarts."]
    gomoku = tasks["agencybench-task3"].subtasks[1].verifier.criteria
    assert gomoku[:2] == ["Immediate win when 5 in a row is formed.",
                          "Six or more in a row still counts as win (standard Gomoku rule)."]
    # task4's project-wide acceptance criteria, written after subtask 5, apply to every round
    pipeline = tasks["agencybench-task4"]
    assert all("No third-party dependencies: Python stdlib only. Fail if external imports." in s.verifier.criteria
               for s in pipeline.subtasks)
    assert "Other Notes" in pipeline.subtasks[0].query and "Other Notes" not in pipeline.subtasks[4].query
    # reference answers in the headers are criteria for the judge, never part of the request
    nba = tasks["agencybench-task9"]
    assert nba.subtasks[3].verifier.criteria == ["The final answer is Klay Thompson (the reference ground truth)."]
    assert not any("Klay" in s.query or "ground truth" in s.query for s in nba.subtasks)
    datasets = tasks["agencybench-task7"]
    assert "EpistemeAI" in datasets.subtasks[0].verifier.criteria[0]
    assert not any("EpistemeAI" in s.query or "DDSC/dkhate" in s.query for s in datasets.subtasks)
    assert "Input format: each record includes: A subject tag" in " ".join(datasets.subtasks[1].verifier.criteria)
    assert [t.category for t in tasks.values()] == [
        "application_development", "backend_development", "algorithm", "backend_development", "data_analysis",
        "data_analysis", "research", "research", "research", "research"]


@needs_agencybench
def test_agencybench_workspace_folders_are_laid_out(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tasks = {t.id: t for t in load_agencybench(AGENCYBENCH)}
    assert tasks["agencybench-task1"].workspace.dir is None
    workspace = prepare_eval_workspace(tasks["agencybench-task7"], tmp_path / "ws")
    assert sorted(p.name for p in workspace.glob("test_data_*.json")) == [
        "test_data_1.json", "test_data_2.json", "test_data_3.json"]


def test_agencybench_file_with_blank_fields_loads_with_a_warning(tmp_path):
    source = {
        "metadata": {"subtask_count": "", "categories": ["Web Frontend Development (UI/Rendering)", ""]},
        "query": ("Project: a tiny dashboard\n\nSubtask 1 — Page\nBuild index.html.\nSuccess Criteria: The page "
                  "loads.\n\nSubtask 2 — Speed\nMake it load fast: the load time must be under .\n"
                  "Success Criteria: \n\nSubtask 3: ground truth: \nWhich framework did we use?\n"),
    }
    folder = tmp_path / "task11"
    folder.mkdir()
    path = folder / "Task11_Tiny_Dashboard.json"
    path.write_text(json.dumps(source))
    with pytest.warns(UserWarning, match=r"Task11_Tiny_Dashboard\.json: loaded with gaps") as caught:
        (task,) = load_agencybench(tmp_path)
    message = str(caught[0].message)
    for gap in ("metadata.subtask_count is missing or blank", "metadata.categories has blank entries",
                "metadata.categories has 2 entries for 3 subtasks", "subtask 2: blank threshold",
                "subtask 2: blank success criteria", "subtask 3: blank ground truth"):
        assert gap in message, gap
    assert task.id == "agencybench-task11" and len(task.subtasks) == 3 and task.category == "frontend_development"
    assert task.subtasks[0].verifier.criteria == ["The page loads."]
    # blank success criteria: the judge falls back to the request itself
    assert task.subtasks[1].verifier.criteria[0].startswith("The work does what this subtask asks: Make it load fast")
    assert task.provenance["warnings"] and "ground truth" not in task.subtasks[2].query


def test_agencybench_unusable_files_raise_naming_the_file(tmp_path):
    cases = {"Task1_broken.json": "{not json", "Task2_list.json": "[1, 2]",
             "Task3_noquery.json": json.dumps({"metadata": {"subtask_count": 1, "categories": ["x"]}, "query": "  "}),
             "Task4_blank.json": json.dumps({"metadata": {}, "query": "Subtask 1\n\nSubtask 2\n"})}
    for name, text in cases.items():
        folder = tmp_path / name.removesuffix(".json")
        folder.mkdir()
        (folder / name).write_text(text)
        with pytest.raises(UserError, match=re.escape(name)):
            load_agencybench(folder)
    with pytest.raises(UserError, match="not found"):
        load_agencybench(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no AgencyBench task files"):
        load_agencybench(tmp_path / "empty")


def test_agencybench_category_mapping():
    assert agencybench_category("Web Frontend Development (UI/Rendering)") == "frontend_development"
    assert agencybench_category("LLM API Calling & Evaluation") == "llm_development"
    assert agencybench_category("Custom Database Implementation (KV/WAL)") == "backend_development"
    assert agencybench_category("Something New") == "application_development"


# --- dispatch -----------------------------------------------------------------------------------------

def test_load_suite_dispatch(tmp_path):
    assert [t.id for t in load_suite("builtin")] == [t.id for t in BUILTIN]
    with pytest.raises(UserError, match="unknown eval suite 'swebench'"):
        load_suite("swebench")
    with pytest.raises(UserError, match="eval suite 'humaneval'"):
        load_suite("humaneval", limt=3)
    with pytest.raises(UserError, match="not found"):
        load_suite("agencybench", directory=tmp_path / "nowhere")
