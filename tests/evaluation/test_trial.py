"""Trials on real tasks (a builtin task, a HumanEval problem) with scripted agents: a good one that applies
the reference solutions, a bad one that never works, a late one that needs one round of feedback, a broken
one. Checks how a trial's subtasks become its outcome and record."""

from __future__ import annotations

import json

import pytest

from pipelines.agent.sandbox.bwrap import BwrapSandbox
from pipelines.core.errors import UserError
from pipelines.core.params import parse_params
from pipelines.core.schema import VerifierSpec
from pipelines.evaluation.suites.builtin import builtin_solution_dir, load_builtin
from pipelines.evaluation.suites.common import EvalTask, Subtask
from pipelines.evaluation.suites.easy import easy_solution_dir, load_easy
from pipelines.evaluation.suites.humaneval import load_humaneval
from pipelines.evaluation.trial import evaluate, outcome_fields
from pipelines.llm.scripted import ScriptedModel

SANDBOX = "bwrap" if BwrapSandbox.available() else "none"
R = 3


def eval_tasks():
    """One builtin task (2 subtasks) and one HumanEval problem, loaded under the test's project root."""
    builtin = next(t for t in load_builtin() if t.id == "contacts-import-fixes")
    return [builtin, load_humaneval(limit=1)[0]]


def params(**overrides):
    return parse_params({"eval": {"rounds": R, "k": 1, "parallel": 2, "sandbox": SANDBOX, **overrides}})


# --- scripted agents ------------------------------------------------------------------------------------

def call(name: str, **arguments) -> dict:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


FINISH = {"content": "Done.", "tool_calls": [call("finish", summary="done")]}


def solution_turns(task) -> list[dict]:
    """One turn per subtask: write the reference files of that subtask, then finish."""
    if task.suite == "humaneval":
        code = task.subtasks[0].query.split("```python\n", 1)[1].rsplit("```", 1)[0]
        files = {"solution.py": code + task.provenance["canonical_solution"]}
        return [{"content": "", "tool_calls": [call("write_file", path=p, content=c) for p, c in files.items()]
                 + [call("finish", summary="wrote solution.py")]}]
    turns = []
    for number in range(1, len(task.subtasks) + 1):
        folder = builtin_solution_dir(task.id, number)
        writes = [call("write_file", path=str(p.relative_to(folder)), content=p.read_text())
                  for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".keep"]
        turns.append({"content": "", "tool_calls": writes + [call("finish", summary=f"subtask {number} done")]})
    return turns


def good(task, trial):
    return ScriptedModel(solution_turns(task), name="good")


def bad(task, trial):
    return ScriptedModel([FINISH] * (R * len(task.subtasks)), name="bad")


def late(task, trial):
    """Claims to be done at once, does the first subtask after feedback, the rest at the first try."""
    return ScriptedModel([FINISH, *solution_turns(task)], name="late")


def test_protocol_maps_subtasks_to_outcomes():
    tasks = eval_tasks()
    broken = ScriptedModel([], name="broken")  # its first answer raises ModelError: the harness's fault
    trials = evaluate(tasks, {"good": good, "bad": bad, "late": late, "broken": broken}, params().eval, parallel=2)
    by = {(t.outcome.model, t.task.suite): t for t in trials}
    assert len(trials) == 8

    first = by[("good", "builtin")].outcome
    assert (first.completed, first.subtasks_met_first_round, first.subtasks_total, first.rounds_used) == (True, 2, 2, 1)
    assert not first.infra_error and first.invalid_tool_calls == 0 and first.steps == 2
    assert by[("good", "humaneval")].outcome.completed

    failed = by[("bad", "builtin")]
    lost = failed.outcome
    assert (lost.completed, lost.subtasks_met_first_round, lost.rounds_used) == (False, 0, R)
    assert len(failed.record["meta"]["subtasks"]) == 1  # the task stops at the subtask that failed R rounds
    assert failed.outcome.steps == R and not failed.outcome.infra_error

    slow = by[("late", "builtin")]
    assert (slow.outcome.completed, slow.outcome.subtasks_met_first_round, slow.outcome.rounds_used) == (True, 1, 2)
    # one conversation: the second subtask's request follows the first subtask's work and feedback
    users = [m["content"] for m in slow.record["messages"] if m["role"] == "user"]
    assert users[0] == tasks[0].subtasks[0].query and users[-1] == tasks[0].subtasks[1].query
    assert any(u.startswith("Not done yet") for u in users[1:-1])
    assert [s["rounds_used"] for s in slow.record["meta"]["subtasks"]] == [2, 1]

    crashed = by[("broken", "builtin")]
    assert crashed.outcome.infra_error and crashed.record["meta"]["termination"] == "infra_error"

    meta = slow.record["meta"]
    assert meta["sampling"]["temperature"] == 0.0 and meta["max_rounds"] == R and meta["passed"]
    assert meta["sandbox"]["kind"] == SANDBOX and "importer.py" in meta["final_diff"]


def test_first_call_validity_and_finish_calls_come_from_the_session():
    """On an easy task: a valid first call that solves it; a first turn that does not parse, then the solution;
    a first call with a wrong argument; plain text only. The trial records its first turn and its finish calls."""
    task = next(t for t in load_easy() if t.id == "status-typo")
    fixed = (easy_solution_dir(task.id, 1) / "status.py").read_text()
    write = {"content": "", "tool_calls": [call("write_file", path="status.py", content=fixed)]}
    agents = {
        "valid": lambda t, k: ScriptedModel([write, FINISH], name="valid"),
        "garbled": lambda t, k: ScriptedModel(['<tool_call>{"name": "bash", "arguments": {"command": </tool_call>',
                                                write, FINISH], name="garbled"),
        "misfit": lambda t, k: ScriptedModel([{"content": "", "tool_calls": [call("read_file", file="status.py")]},
                                              *[FINISH] * R], name="misfit"),
        "chatty": lambda t, k: ScriptedModel(["I would fix the typo."] * R, name="chatty"),
    }
    trials = {t.outcome.model: t.outcome for t in evaluate([task], agents, params().eval, parallel=2)}
    assert {m: (o.first_call_valid, o.finish_calls, o.completed) for m, o in trials.items()} == {
        "valid": (True, 1, True), "garbled": (False, 1, True), "misfit": (False, R, False), "chatty": (False, 0, False)}
    assert trials["misfit"].invalid_tool_calls == 1 and trials["garbled"].tool_calls == 2
    # the calls not made: garbled's unparsed first turn, and chatty's prose, one turn in each of its R rounds
    assert {m: o.missed_calls for m, o in trials.items()} == {"valid": 0, "garbled": 1, "misfit": 0, "chatty": R}
    assert outcome_fields(trials["chatty"])["missed_calls"] == R  # recorded, so a shard's merge reads it back


def test_rubric_subtasks_show_the_judge_the_agents_answer():
    task = EvalTask(id="capital-question", suite="agencybench", domain="research", category="research",
                    subtasks=[Subtask("Which city is the capital of France?",
                                      VerifierSpec(kind="rubric", criteria=["The answer names Paris."]))])

    def verdict(messages):
        met = "The capital is Paris" in messages[-1]["content"]  # only the transcript tail carries it
        return {"content": json.dumps({"scores": [{"criterion": 1, "met": met, "rationale": "checked"}]})}

    answer = {"content": "", "tool_calls": [call("finish", summary="The capital is Paris.")]}
    with pytest.raises(UserError, match="judge"):
        evaluate([task], {"agent": ScriptedModel([answer])}, params().eval)
    trials = evaluate([task], {"agent": ScriptedModel([answer])}, params().eval, judge=ScriptedModel([verdict]))
    assert trials[0].outcome.completed and trials[0].outcome.subtasks_met_first_round == 1
