"""An AgencyBench subtask scored partly by execution: the real task1 C++ file's first subtask, a scripted agent
that writes a chat program with a Makefile, g++ in the real sandbox for the build requirement, a scripted judge
for the rest. The record says per check how it was decided; a program that does not compile fails."""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from pathlib import Path

import pytest

from pipelines.core.params import parse_params
from pipelines.evaluation.suites.agencybench import load_agencybench
from pipelines.evaluation.trial import evaluate
from pipelines.llm.scripted import ScriptedModel

AGENCYBENCH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "agencybench-v1"
pytestmark = [pytest.mark.needs_bwrap,
              pytest.mark.skipif(not AGENCYBENCH.is_dir(), reason=f"{AGENCYBENCH} not present")]


@pytest.fixture(autouse=True)
def toolchain():
    """g++ and make build the program; `make setup` installs them, so their absence fails, never skips."""
    assert shutil.which("g++") and shutil.which("make"), "g++ and make are needed: run `make setup`"

MAKEFILE = "task1:\n\tmkdir -p bin\n\tg++ -std=c++17 -o bin/chat_app src/main.cpp\n"
GOOD = ('#include <iostream>\n#include <string>\nint main() {\n  std::string user;\n'
        '  std::cout << "register or login: ";\n  if (!(std::cin >> user)) return 0;\n'
        '  std::cout << "welcome " << user << "\\n";\n}\n')
BROKEN = "#include <iostream>\nint main() { std::cout << undeclared_name; }\n"


def chat_task():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task = next(t for t in load_agencybench(AGENCYBENCH) if t.id == "agencybench-task1")
    return dataclasses.replace(task, subtasks=task.subtasks[:1])


def call(name: str, **arguments) -> dict:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def agent(source: str) -> ScriptedModel:
    files = {"workspace/Makefile": MAKEFILE, "workspace/src/main.cpp": source}
    return ScriptedModel([{"content": "", "tool_calls": [call("write_file", path=p, content=c) for p, c in files.items()]
                           + [call("finish", summary="Login and registration are in workspace/src/main.cpp.")]}])


def judge_all_met(messages):
    return {"content": json.dumps({"scores": [{"criterion": 1, "met": True, "rationale": "register and login"}]})}


@pytest.mark.parametrize("source,builds", [(GOOD, True), (BROKEN, False)], ids=["compiles", "broken"])
def test_build_requirement_is_checked_by_execution_and_the_rest_by_the_judge(source, builds):
    settings = parse_params({"eval": {"rounds": 1, "k": 1, "parallel": 1, "sandbox": "bwrap"}}).eval
    judge = ScriptedModel([judge_all_met])
    (trial,) = evaluate([chat_task()], {"agent": agent(source)}, settings, judge=judge)
    (subtask,) = trial.record["meta"]["subtasks"]
    checks = subtask["final"]["checks"]
    assert [(c["method"], c["passed"]) for c in checks] == [("judge", True), ("execution", builds)]
    assert checks[1]["name"] == "cd workspace && make task1"
    assert subtask["passed"] is builds and trial.outcome.completed is builds
    # the judge saw the program, the build's outcome and the agent's report
    prompt = judge.requests[0]["messages"][0]["content"]
    assert "--- workspace/src/main.cpp" in prompt and "$ cd workspace && make task1" in prompt
    assert f"(exit status {0 if builds else 2})" in prompt and "Login and registration are in" in prompt
    if not builds:
        assert "undeclared_name" in checks[1]["output"]
