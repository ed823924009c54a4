"""The humaneval eval suite loaded for real from the installed package: canonical solutions pass its checks
in bubblewrap, wrong ones fail, also through the agent loop."""

from __future__ import annotations

import pytest

from pipelines.agent.loop import Limits, run_episode
from pipelines.agent.sandbox.factory import make_sandbox
from pipelines.agent.tools import Toolbox
from pipelines.agent.users import SimulatedUser
from pipelines.agent.verifiers import TestsVerifier
from pipelines.evaluation.suites.common import EvalTask, prepare_eval_workspace
from pipelines.evaluation.suites.humaneval import load_humaneval
from pipelines.evaluation.tasks import load_suite
from pipelines.llm.scripted import ScriptedModel
from tests.evaluation.suites.test_builtin import exit_codes, needs_bwrap

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
