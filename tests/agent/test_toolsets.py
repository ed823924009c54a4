"""Tool sets: the default set unchanged, and the ``limi`` set (SII CLI's tools) doing each job in the real
bubblewrap sandbox, confined to the workspace, through a collect episode and an eval trial."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from pipelines.agent.loop import SYSTEM_PROMPT
from pipelines.agent.sandbox.bwrap import BwrapSandbox
from pipelines.agent.tools import LIMI_TOOL_SCHEMAS, TOOL_SCHEMAS, Toolbox, well_formed_call
from pipelines.agent.toolsets import tool_set
from pipelines.collection.episode import Collector
from pipelines.collection.plan import Job, episode_key
from pipelines.core.params import parse_params
from pipelines.core.schema import Query, TrajectoryRecord
from pipelines.evaluation.suites.humaneval import load_humaneval
from pipelines.evaluation.trial import evaluate
from pipelines.llm.scripted import ScriptedModel

#: the default set's schemas and system prompt, and a default-params episode key, as they were before tool
#: sets existed: records and resume keys of a default run must not move
DEFAULT_SCHEMAS_SHA = "ab9a6c2f367dffcdd5c4d40da0fcdf92701fbc888ac13dc4a373168f880fee16"
DEFAULT_PROMPT_SHA = "7032c9946605c3d2ff2b544b141eee2f2e7ddee28fcd93f02249c9ac75a69d70"
DEFAULT_EPISODE_KEY = "20b0c88910b4ff8b"


def call(name: str, **arguments) -> dict:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


@pytest.fixture
def box(workspace) -> Toolbox:
    return Toolbox(workspace, BwrapSandbox(workspace, timeout_s=10), tool_set="limi")


@pytest.fixture
def outside(tmp_path) -> Path:
    path = tmp_path / "outside.txt"
    path.write_text("host secret\n")
    return path


def test_default_set_is_byte_identical_to_before():
    assert hashlib.sha256(json.dumps(TOOL_SCHEMAS).encode()).hexdigest() == DEFAULT_SCHEMAS_SHA
    default = tool_set(None)
    assert default.name == "default" and default.schemas is TOOL_SCHEMAS
    assert hashlib.sha256(default.system_prompt.encode()).hexdigest() == DEFAULT_PROMPT_SHA == \
        hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest()


def test_limi_set_has_sii_cli_names_and_shapes():
    shapes = {s["function"]["name"]: (list(s["function"]["parameters"]["properties"]),
                                      s["function"]["parameters"]["required"]) for s in LIMI_TOOL_SCHEMAS}
    assert shapes == {
        "run_shell_command": (["command", "description", "directory"], ["command"]),
        "read_file": (["absolute_path", "offset", "limit"], ["absolute_path"]),
        "write_file": (["file_path", "content"], ["file_path", "content"]),
        "replace": (["file_path", "old_string", "new_string", "expected_replacements"],
                    ["file_path", "old_string", "new_string"]),
        "glob": (["pattern", "path"], ["pattern"]),
        "search_file_content": (["pattern", "path", "include"], ["pattern"]),
    }
    assert "finish" not in shapes and "finish" not in tool_set("limi").system_prompt
    assert well_formed_call(call("replace", file_path="/a", old_string="x", new_string="y"), LIMI_TOOL_SCHEMAS)
    assert not well_formed_call(call("str_replace", path="a", old="x", new="y"), LIMI_TOOL_SCHEMAS)
    with pytest.raises(ValueError, match="unknown tool set 'gemini'"):
        tool_set("gemini")


@pytest.mark.needs_bwrap
def test_limi_shell_runs_in_the_sandbox_in_a_chosen_folder(box, workspace):
    (workspace / "sub").mkdir()
    out = box.call("run_shell_command", {"command": "pwd; echo oops >&2; exit 3", "description": "where am I"})
    assert out.output == f"Command: pwd; echo oops >&2; exit 3\nDirectory: (root)\nOutput: {workspace}\noops\n" \
                         "Exit Code: 3" and not out.is_error
    inside = box.call("run_shell_command", {"command": "pwd && touch made", "directory": "sub"})
    assert f"Output: {workspace}/sub\n" in inside.output and (workspace / "sub/made").exists()
    assert box.call("run_shell_command", {"command": "true"}).output.endswith("Output: (empty)\nExit Code: 0")
    assert box.call("run_shell_command", {"command": "true", "directory": "nope"}).is_error
    unknown = box.call("bash", {"command": "ls"})
    assert unknown.is_error and "Available tools: run_shell_command, read_file" in unknown.output


@pytest.mark.needs_bwrap
def test_limi_file_tools_read_write_replace(box, workspace):
    path = str(workspace / "pkg/mod.py")
    assert "Wrote" in box.call("write_file", {"file_path": path, "content": "a = 1\nb = 1\nc = 2\n"}).output
    assert box.call("run_shell_command", {"command": "python3 -c 'import pkg.mod as m; print(m.a + m.c)'"}
                    ).output.split("Output: ")[1].startswith("3\nExit Code: 0")
    assert box.call("read_file", {"absolute_path": path}).output == "a = 1\nb = 1\nc = 2\n"
    assert box.call("read_file", {"absolute_path": "pkg/mod.py", "offset": 1, "limit": 1}).output == (
        "[File content truncated: showing lines 2-2 of 3 total lines. Use offset=2 to read on.]\nb = 1\n")
    assert box.call("read_file", {"absolute_path": path, "offset": 3}).is_error  # past the end

    twice = box.call("replace", {"file_path": path, "old_string": "= 1", "new_string": "= 5"})
    assert twice.is_error and "expected 1 occurrence of old_string but found 2" in twice.output
    both = box.call("replace", {"file_path": path, "old_string": "= 1", "new_string": "= 5",
                                "expected_replacements": 2})
    assert not both.is_error and "2 replacements" in both.output
    assert Path(path).read_text() == "a = 5\nb = 5\nc = 2\n"
    assert "0 occurrences" in box.call("replace", {"file_path": path, "old_string": "zz", "new_string": "y"}).output
    created = box.call("replace", {"file_path": "new.txt", "old_string": "", "new_string": "fresh\n"})
    assert "Created new file new.txt" in created.output and (workspace / "new.txt").read_text() == "fresh\n"
    assert box.call("replace", {"file_path": "new.txt", "old_string": "", "new_string": "again"}).is_error


@pytest.mark.needs_bwrap
def test_limi_glob_and_search(box, workspace):
    box.call("run_shell_command", {"command": "mkdir -p src/deep docs .git && printf 'def f():\\n    return 1\\n' "
                                              "> src/a.py && printf 'def g(): pass\\n' > src/deep/b.py && "
                                              "echo 'def f in docs' > docs/n.md && echo 'def x' > .git/c.py && "
                                              "printf 'def\\0bin' > src/blob.py"})
    found = box.call("glob", {"pattern": "**/*.py"}).output
    assert found.splitlines()[1:] == [f"{workspace}/src/a.py", f"{workspace}/src/blob.py",
                                      f"{workspace}/src/deep/b.py"]  # sorted, .git skipped
    assert box.call("glob", {"pattern": "*.py", "path": "src"}).output.splitlines()[1:] == [
        f"{workspace}/src/a.py", f"{workspace}/src/blob.py"]
    assert "No files found" in box.call("glob", {"pattern": "*.rs"}).output

    hits = box.call("search_file_content", {"pattern": r"def \w+\(", "include": "*.py"}).output
    assert hits.startswith('Found 2 matches for pattern "def \\w+\\(" in . (filter: "*.py")')
    assert "File: src/a.py\nL1: def f():" in hits and "File: src/deep/b.py\nL1: def g(): pass" in hits
    assert "docs" not in hits and ".git" not in hits and "blob" not in hits  # filtered, skipped, binary
    one = box.call("search_file_content", {"pattern": "return", "path": str(workspace / "src/a.py")}).output
    assert "File: src/a.py\nL2:     return 1" in one
    assert "No matches" in box.call("search_file_content", {"pattern": "nothing here"}).output
    assert box.call("search_file_content", {"pattern": "(unclosed"}).is_error


@pytest.mark.needs_bwrap
@pytest.mark.parametrize("path", ["../outside.txt", "{outside}", "/etc/passwd", "link.txt"])
def test_limi_paths_outside_the_workspace_are_refused(box, workspace, outside, path):
    (workspace / "link.txt").symlink_to(outside)
    path = path.format(outside=outside)
    calls = [("read_file", {"absolute_path": path}), ("write_file", {"file_path": path, "content": "pwned\n"}),
             ("replace", {"file_path": path, "old_string": "host", "new_string": "pwned"}),
             ("glob", {"pattern": "*", "path": path}),
             ("search_file_content", {"pattern": "secret", "path": path}),
             ("run_shell_command", {"command": "cat outside.txt", "directory": path})]
    for name, arguments in calls:
        result = box.call(name, arguments)
        assert result.is_error and re.search("outside the workspace|symbolic link|not a folder", result.output), \
            (name, result.output)
    assert outside.read_text() == "host secret\n"


@pytest.mark.needs_bwrap
def test_limi_search_and_glob_do_not_follow_links_out(box, workspace, tmp_path, outside):
    (tmp_path / "outdir").mkdir()
    (tmp_path / "outdir" / "leak.py").write_text("secret = 1\n")
    (workspace / "dirlink").symlink_to(tmp_path / "outdir")
    (workspace / "link.py").symlink_to(outside)
    assert "No matches" in box.call("search_file_content", {"pattern": "secret"}).output
    assert "No files found" in box.call("glob", {"pattern": "**/*"}).output


# --- episodes ---------------------------------------------------------------------------------------------

def query(root: Path) -> Query:
    (root / "solution").mkdir(exist_ok=True)
    (root / "solution" / "value.py").write_text("VALUE = 7\n")
    return Query.model_validate({
        "id": "h-1", "source": "human", "domain": "software", "category": "codebase_debugging",
        "query": "Set VALUE in value.py to 7.", "workspace": {"files": {"value.py": "VALUE = None\n"}},
        "verifier": {"kind": "tests", "commands": ["python3 -c 'import value; assert value.VALUE == 7'"]},
        "provenance": {"solution_dir": "solution"}})


@pytest.mark.needs_bwrap
def test_collect_with_the_limi_set_passes_and_records_it(tmp_path):
    default = parse_params({"collect": {"sandbox": "bwrap", "rounds": 1}})
    limi = parse_params({"collect": {"sandbox": "bwrap", "rounds": 1, "tool_set": "limi"}})
    q = query(tmp_path)
    assert episode_key(q, "replay", default) == DEFAULT_EPISODE_KEY  # the default set's keys did not move
    key = episode_key(q, "replay", limi)
    assert key != DEFAULT_EPISODE_KEY

    record = Collector(limi, tmp_path).run(Job(q, "replay", key))
    parsed = TrajectoryRecord.model_validate(record)
    assert parsed.meta.passed and record["meta"]["tool_set"] == "limi" and record["tools"] == LIMI_TOOL_SCHEMAS
    assert record["messages"][0]["content"] == tool_set("limi").system_prompt
    names = {c["function"]["name"] for m in record["messages"] for c in m.get("tool_calls") or []}
    assert names == {"run_shell_command", "read_file", "replace"}  # the replay read, edited, ran it
    assert record["messages"][-1]["role"] == "assistant" and not record["messages"][-1].get("tool_calls")
    assert not any("Error" in (m.get("content") or "")[:6] for m in record["messages"] if m["role"] == "tool")

    plain = Collector(default, tmp_path).run(Job(q, "replay", DEFAULT_EPISODE_KEY))
    assert "tool_set" not in plain["meta"] and plain["tools"] == TOOL_SCHEMAS and plain["meta"]["passed"]


@pytest.mark.needs_bwrap
def test_eval_gives_each_model_its_tool_set():
    task = load_humaneval(limit=1)[0]
    code = task.subtasks[0].query.split("```python\n", 1)[1].rsplit("```", 1)[0] + task.provenance["canonical_solution"]

    def write_at_root(messages):  # the path comes from the shell's pwd, as an absolute path
        root = messages[-1]["content"].split("Output: ", 1)[1].split("\n", 1)[0]
        return {"content": "", "tool_calls": [call("write_file", file_path=f"{root}/solution.py", content=code)]}

    limi_model = ScriptedModel([{"content": "", "tool_calls": [call("run_shell_command", command="pwd")]},
                                write_at_root, {"content": "Wrote solution.py."}], name="limi")
    plain_model = ScriptedModel([{"content": "", "tool_calls": [call("write_file", path="solution.py", content=code),
                                                                call("finish", summary="done")]}], name="plain")
    settings = parse_params({"eval": {"rounds": 1, "k": 1, "sandbox": "bwrap", "models": [
        {"name": "plain", "model": "embedded"}, {"name": "limi", "model": "embedded", "tool_set": "limi"}]}}).eval
    trials = {t.outcome.model: t for t in evaluate([task], {"plain": plain_model, "limi": limi_model}, settings,
                                                   parallel=1)}
    limi, plain = trials["limi"], trials["plain"]
    assert limi.outcome.completed and limi.outcome.invalid_tool_calls == 0 and limi.outcome.finish_calls == 0
    # with the limi set the closing prose is how the work ends, not a call it failed to make
    assert limi.outcome.missed_calls == 0 and plain.outcome.missed_calls == 0
    assert limi.record["tools"] == LIMI_TOOL_SCHEMAS and limi.record["meta"]["tool_set"] == "limi"
    assert limi_model.requests[0]["tools"] == LIMI_TOOL_SCHEMAS
    assert limi.record["meta"]["system_prompt_sha"] == hashlib.sha256(
        tool_set("limi").system_prompt.encode()).hexdigest()[:12]
    assert plain.outcome.completed and "tool_set" not in plain.record["meta"] and plain.record["tools"] == TOOL_SCHEMAS
    assert plain.record["meta"]["system_prompt_sha"] == DEFAULT_PROMPT_SHA[:12]
