"""The whole agent loop driven by the scripted backend, with the real sandbox and tools."""

import json
import sys
import textwrap

import pexpect
import pytest

from pipelines.agent.loop import Limits, run_episode
from pipelines.agent.replay import ReplayTeacher, is_program, named_commands, plan_edits, public_runs
from pipelines.agent.sandbox.factory import make_sandbox
from pipelines.agent.tools import Toolbox
from pipelines.agent.users import SimulatedUser
from pipelines.agent.verifiers import TestsVerifier, patch_changes, unified_diff
from pipelines.agent.workspace import snapshot_files
from pipelines.llm.base import EndpointError
from pipelines.llm.scripted import ScriptedModel
from pipelines.core.schema import VerifierSpec
from tests.conftest import REPO

pytestmark = pytest.mark.needs_bwrap
CHECKS = VerifierSpec(kind="tests", commands=["test -f hello.py", "python3 hello.py | grep -qx 'Hello, world!'"])


def call(name, **arguments):
    return {"content": "", "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}]}


def episode(tmp_path, turns, limits=None, user=None):
    sandbox = make_sandbox("bwrap", tmp_path, timeout_s=10)
    model = turns if hasattr(turns, "chat") else ScriptedModel(turns)
    result = run_episode("Write hello.py that prints Hello, world!", model, Toolbox(tmp_path, sandbox),
                         TestsVerifier(CHECKS, sandbox), user or SimulatedUser(), limits or Limits(max_rounds=3),
                         workspace=tmp_path)
    return result, model


def test_solved_in_round_one(tmp_path):
    result, _ = episode(tmp_path, [call("write_file", path="hello.py", content="print('Hello, world!')\n"),
                                   call("bash", command="python3 hello.py"), call("finish", summary="done")])
    assert result.termination == "finished" and result.passed and result.rounds_used == 1
    assert result.first_round.passed and result.steps == 3
    roles = [m["role"] for m in result.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant", "tool"]
    assert result.messages[5]["content"].startswith("Hello, world!")


def test_solved_in_round_two_after_feedback(tmp_path):
    result, model = episode(tmp_path, [
        call("write_file", path="hello.py", content="print('hello world')\n"), call("finish", summary="done"),
        call("write_file", path="hello.py", content="print('Hello, world!')\n"), call("finish", summary="fixed")])
    assert result.passed and result.rounds_used == 2 and not result.first_round.passed
    assert result.first_round.score == 0.5
    feedback = [m for m in result.messages if m["role"] == "user"][1]["content"]
    # the unmet requirement, never the hidden check's command or what it expects
    assert feedback.startswith("Not done yet: 1 of 2 requirements not met.") and "Requirement 2" in feedback
    assert "grep" not in feedback and "Hello, world!" not in feedback
    assert model.requests[2]["messages"][-1] == {"role": "user", "content": feedback}


def test_format_errors_are_shown_and_recovered(tmp_path):
    result, model = episode(tmp_path, [
        '<tool_call>\n{"name": "write_file", "arguments": {"path": "hello.py"\n</tool_call>',
        call("write_file", path="hello.py", content="print('Hello, world!')\n"), call("finish", summary="ok")])
    assert result.passed and result.format_errors == 1
    assert "could not be read as a tool call" in model.requests[1]["messages"][-1]["content"]


def test_bad_tool_use_goes_back_to_the_model(tmp_path):
    result, _ = episode(tmp_path, [call("no_such_tool"), call("write_file", path="../x.py", content="x"),
                                   call("write_file", path="hello.py", content="print('Hello, world!')\n"),
                                   call("finish", summary="ok")])
    assert result.passed and result.invalid_tool_calls == 2


@pytest.mark.parametrize("reason,limits,turns", [
    ("step_limit", Limits(max_steps=2), [call("bash", command="true")] * 5),
    ("token_limit", Limits(max_tokens=300), [call("bash", command="echo " + "x" * 2000)] * 5),
    ("time_limit", Limits(max_seconds=1.0), [call("bash", command="sleep 0.6")] * 5),
    ("format_errors", Limits(max_format_errors=3), ["<tool_call>\nnot json\n</tool_call>"] * 5),
])
def test_limits(tmp_path, reason, limits, turns):
    result, _ = episode(tmp_path, turns, limits=limits)
    assert result.termination == reason and not result.passed


def test_endpoint_outage_is_infra_error(tmp_path):
    def outage(messages):
        raise EndpointError("http://127.0.0.1:9/v1: no answer after 3 attempts")

    result, _ = episode(tmp_path, [call("bash", command="ls"), outage])
    assert result.termination == "infra_error" and "no answer" in result.error


def test_out_of_rounds_ends_failed(tmp_path):
    wrong = [call("write_file", path="hello.py", content="print(1)\n"), call("finish", summary="done")]
    result, _ = episode(tmp_path, wrong * 3, limits=Limits(max_rounds=2))
    assert result.termination == "finished" and not result.passed and result.rounds_used == 2


def test_replay_trajectory_verifies(tmp_path):
    (tmp_path / "calc.py").write_text("def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n")
    before = {"calc.py": (tmp_path / "calc.py").read_text()}
    after = {"calc.py": before["calc.py"].replace("return a - b\n\n", "return a + b\n\n", 1),
             "hello.py": "print('Hello, world!')\n"}
    edits = plan_edits(before, after)
    assert [c["function"]["name"] for c in edits] == ["str_replace", "write_file"]
    teacher = ReplayTeacher(before, after, runs=public_runs("Fix add, and write hello.py.", before, after),
                            current=lambda: snapshot_files(tmp_path))
    result, _ = episode(tmp_path, teacher)
    assert result.passed and result.termination == "finished"
    assert (tmp_path / "calc.py").read_text() == after["calc.py"]
    names = [c["function"]["name"] for m in result.messages if m["role"] == "assistant" for c in m["tool_calls"]]
    assert names[0] == "bash" and "read_file" in names and names[-1] == "finish"
    commands = [c["function"]["arguments"].get("command") for m in result.messages if m["role"] == "assistant"
                for c in m["tool_calls"]]
    # it runs the program it wrote, never a hidden check
    assert "python3 hello.py" in commands and not set(CHECKS.commands) & set(commands)
    files, lines = patch_changes(unified_diff(before, after))
    assert files == {"calc.py", "hello.py"} and ("calc.py", "+return a + b") in lines


def test_replay_runs_what_the_request_names_then_tidies_what_trying_changed(tmp_path):
    (tmp_path / "VERSION").write_text("1.0.0\n")
    before = {"VERSION": "1.0.0\n"}
    script = 'v=$(cat VERSION); echo "${v%.*}.$(( ${v##*.} + 1 ))" > VERSION; echo "bumped"\n'
    after = {"VERSION": "1.0.0\n", "bump.sh": script, "report.csv": "a,b\n1,2\n"}
    query = "Write bump.sh so that `bash bump.sh` bumps the patch number in VERSION; also write report.csv."
    runs = public_runs(query, before, after)
    assert runs == ["bash bump.sh"]
    teacher = ReplayTeacher(before, after, runs=runs, current=lambda: snapshot_files(tmp_path))
    result, _ = episode(tmp_path, teacher)
    assert snapshot_files(tmp_path) == after  # trying the command bumped VERSION; the replay put it back
    calls = [c["function"] for m in result.messages if m["role"] == "assistant" for c in m["tool_calls"]]
    ran = next(i for i, c in enumerate(calls) if c["arguments"].get("command") == "bash bump.sh")
    wrote_report = next(i for i, c in enumerate(calls) if c["arguments"].get("path") == "report.csv")
    assert ran < wrote_report  # an output is written after the program ran, not known up front


def test_public_runs_read_the_request_and_the_programs():
    assert named_commands("Run `python3 greet.py Ada` and `ls`; call `f(x)`; `./build.sh --all`.") == [
        "python3 greet.py Ada", "./build.sh --all"]
    assert is_program("import csv\nrows = list(csv.reader(open('a.csv')))\nprint(len(rows))\n")
    assert not is_program('"""A library."""\nimport re\n\ndef f():\n    return 1\n')
    assert not is_program("import sys\nprint(sys.argv[1])\n")  # needs arguments: only a named command runs it
    before, after = {}, {"tool.py": "print(1)\n", "lib.py": "def g():\n    pass\n", "pkg/m.py": "print(2)\n"}
    assert public_runs("Write `python3 tool.py`.", before, after) == ["python3 tool.py"]
    assert public_runs("Write it.", before, after) == ["python3 tool.py"]


HUMAN_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from pipelines.agent.loop import Limits, run_episode
    from pipelines.agent.sandbox.factory import make_sandbox
    from pipelines.agent.tools import Toolbox
    from pipelines.agent.users import HumanUser
    from pipelines.agent.verifiers import TestsVerifier
    from pipelines.llm.scripted import ScriptedModel
    from pipelines.core.schema import VerifierSpec
    ws = Path(sys.argv[1])
    def call(name, **a):
        return {"content": "", "tool_calls": [{"type": "function", "function": {"name": name, "arguments": a}}]}
    model = ScriptedModel([call("write_file", path="hello.py", content="print('hi')\\n"), call("finish", summary="v1"),
                           lambda msgs: call("write_file", path="hello.py", content="print(%r)\\n" % msgs[-1]["content"]),
                           call("finish", summary="v2")])
    sb = make_sandbox("bwrap", ws)
    spec = VerifierSpec(kind="tests", commands=["python3 hello.py | grep -qx 'Hello, world!'"])
    r = run_episode("write hello.py", model, Toolbox(ws, sb), TestsVerifier(spec, sb), HumanUser(), Limits(), workspace=ws)
    print("RESULT " + json.dumps({"verdict": r.human_verdict, "rounds": r.rounds_used, "passed": r.final.passed}))
""")


def test_human_user_through_a_terminal(tmp_path):
    script = tmp_path / "human.py"
    script.write_text(HUMAN_SCRIPT)
    ws = tmp_path / "ws"
    ws.mkdir()
    child = pexpect.spawn(sys.executable, [str(script), str(ws)], env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
                          encoding="utf-8", timeout=60)
    child.expect(r"\[user\] write hello.py")  # the person sees the transcript before the verdict
    child.expect(r"-> write_file\(.*print\('hi'\)")
    child.expect(r"checks: FAIL")
    child.expect("Your feedback")
    child.sendline("Hello, world!")
    child.expect(r"checks: PASS")
    child.expect("Your feedback")
    child.sendline("")
    child.expect(r"RESULT (\{.*\})")
    outcome = json.loads(child.match.group(1))
    assert outcome == {"verdict": "accepted", "rounds": 2, "passed": True}
    child.expect(pexpect.EOF)
