"""The AgencyBench v1 eval suite: the files shipped in shared/data loaded for real, and files with gaps or
unusable ones."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest

from pipelines.core.errors import UserError
from pipelines.core.taxonomy import CATEGORY_DOMAIN
from pipelines.evaluation.suites.agencybench import agencybench_category, load_agencybench
from pipelines.evaluation.suites.common import prepare_eval_workspace

AGENCYBENCH = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "agencybench-v1"  # ../shared beside the checkout
needs_agencybench = pytest.mark.skipif(not AGENCYBENCH.is_dir(), reason=f"{AGENCYBENCH} not present")


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


#: acceptance criteria per subtask, counted by hand in the v1 files: one "Success Criteria:"/"Expected:" sentence
#: (tasks 1, 2, 4), bullets under "Acceptance Criteria:" (task3) or under "Contents:" (task6, "*" sub-bullets
#: joined to theirs), a hidden reference answer plus the listed characteristics (task7), the request itself
#: where nothing is listed (task5, task8's blank thresholds); task4 adds its 5 project-wide criteria to each
CRITERIA_COUNTS = {
    "agencybench-task1": [1, 1, 1, 1, 1], "agencybench-task2": [1, 1, 1, 1, 1], "agencybench-task3": [4, 4, 5, 3, 3],
    "agencybench-task4": [6, 6, 6, 6, 6], "agencybench-task5": [1] * 8, "agencybench-task6": [6, 4, 4, 3, 6],
    "agencybench-task7": [6, 7, 6], "agencybench-task8": [3, 1, 1, 1, 1], "agencybench-task9": [1, 1, 1, 1],
    "agencybench-task10": [1, 1, 1, 1],
}


@needs_agencybench
def test_agencybench_criteria_count_of_every_subtask():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tasks = load_agencybench(AGENCYBENCH)
    assert {t.id: [len(s.verifier.criteria) for s in t.subtasks] for t in tasks} == CRITERIA_COUNTS
    assert len(caught) == 1 and "blank threshold" in str(caught[0].message)  # task8 still warns
    by_id = {t.id: t for t in tasks}
    # the Run blocks of the C++ and Java tasks become build requirements checked by execution, after the criteria
    chat = by_id["agencybench-task1"].subtasks[0].verifier
    assert chat.commands == ["cd workspace && make task1"]
    assert chat.requirements[-1] == "The project builds with the command the subtask gives (`make task1`)."
    assert len(chat.requirements) == len(chat.criteria) + len(chat.commands)
    java = by_id["agencybench-task2"].subtasks[4].verifier  # "# Open multiple terminals" and the launches: not run
    assert java.commands == ["cd workspace && javac -d bin task5/*.java"]
    gomoku = by_id["agencybench-task3"].subtasks
    assert all(s.verifier.requirements[-1] == "The page index.html opens in a browser without script errors."
               for s in gomoku)
    assert all(not s.verifier.commands for t in tasks[3:] for s in t.subtasks)
