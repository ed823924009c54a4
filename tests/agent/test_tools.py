"""The agent's tools on a real workspace: schemas, file tools and their confinement, argument checking."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pipelines.agent.sandbox.bwrap import BwrapSandbox
from pipelines.agent.sandbox.plain import NoSandbox
from pipelines.agent.tools import TOOL_SCHEMAS, ToolResult, Toolbox, well_formed_call


@pytest.fixture
def toolbox(workspace) -> Toolbox:
    # the file tools run in-process, so the sandbox kind does not matter for them
    return Toolbox(workspace, NoSandbox(workspace, timeout_s=10))


@pytest.fixture
def outside(tmp_path) -> Path:
    """A file next to the workspace, which no file tool may touch."""
    path = tmp_path / "outside.txt"
    path.write_text("host secret\n")
    return path


def read(toolbox: Toolbox, path: str, **kw) -> ToolResult:
    return toolbox.call("read_file", {"path": path, **kw})


def test_schemas_are_openai_function_tools():
    assert [s["function"]["name"] for s in TOOL_SCHEMAS] == ["bash", "read_file", "write_file", "str_replace",
                                                            "finish"]
    for schema in TOOL_SCHEMAS:
        assert schema["type"] == "function" and schema["function"]["description"]
        params = schema["function"]["parameters"]
        assert params["type"] == "object" and params["additionalProperties"] is False
        assert set(params["required"]) <= set(params["properties"])
    assert json.loads(json.dumps(TOOL_SCHEMAS)) == TOOL_SCHEMAS


def test_read_file_numbers_lines_and_reads_ranges(toolbox, workspace):
    (workspace / "five.txt").write_text("one\ntwo\nthree\nfour\nfive")
    assert read(toolbox, "five.txt").output == "     1\tone\n     2\ttwo\n     3\tthree\n     4\tfour\n     5\tfive\n"
    assert read(toolbox, "five.txt", start_line=2, end_line=3).output == "     2\ttwo\n     3\tthree\n"
    assert read(toolbox, "five.txt", start_line=5).output == "     5\tfive\n"
    assert read(toolbox, "five.txt", start_line=4, end_line=9).output == (
        "     4\tfour\n     5\tfive\n[end of file: five.txt has 5 lines]")
    past = read(toolbox, "five.txt", start_line=6)
    assert past.is_error and "past the end of five.txt, which has 5 lines" in past.output
    backwards = read(toolbox, "five.txt", start_line=3, end_line=2)
    assert backwards.is_error and "before start_line" in backwards.output
    zero = read(toolbox, "five.txt", start_line=0)
    assert zero.is_error and "at least 1" in zero.output
    (workspace / "empty.txt").write_text("")
    assert read(toolbox, "empty.txt").output == "[empty.txt is empty]"


def test_read_file_output_is_capped_with_a_way_on(workspace):
    toolbox = Toolbox(workspace, NoSandbox(workspace), max_read_bytes=200)
    (workspace / "long.txt").write_text("".join(f"line {i}\n" for i in range(1, 101)))
    first = read(toolbox, "long.txt").output
    assert first.startswith("     1\tline 1\n") and len(first) < 300
    next_start = int(first.rsplit("start_line=", 1)[1].rstrip("]"))
    assert read(toolbox, "long.txt", start_line=next_start).output.startswith(f"{next_start:6}\tline {next_start}\n")
    (workspace / "one_line.min.js").write_bytes(b"x" * 5_000_000)
    cut = read(toolbox, "one_line.min.js").output
    assert len(cut) < 400 and "more bytes on this line" in cut


def test_read_file_refuses_binaries_folders_and_fifos(toolbox, workspace):
    (workspace / "blob.bin").write_bytes(b"\x7fELF\0\0\1")
    assert "binary file" in read(toolbox, "blob.bin").output
    (workspace / "src").mkdir()
    assert read(toolbox, "src").is_error and "is a folder" in read(toolbox, "src").output
    os.mkfifo(workspace / "pipe")
    started = time.monotonic()
    for result in (read(toolbox, "pipe"), toolbox.call("write_file", {"path": "pipe", "content": "x"})):
        assert result.is_error
    assert time.monotonic() - started < 10  # neither call blocked on the FIFO (a blocked open never returns)


def test_write_file_creates_folders_and_overwrites(toolbox, workspace):
    result = toolbox.call("write_file", {"path": "pkg/sub/mod.py", "content": "a = 1\nb = 2\n"})
    assert not result.is_error and result.output == "Wrote 12 bytes (2 lines) to pkg/sub/mod.py."
    toolbox.call("write_file", {"path": str(workspace / "pkg/sub/mod.py"), "content": "c = 3\n"})  # absolute inside
    assert (workspace / "pkg/sub/mod.py").read_text() == "c = 3\n"


def test_str_replace_edits_exactly_one_occurrence(toolbox, workspace):
    target = workspace / "app.py"
    target.write_bytes(b"def f():\r\n    return 1\r\n\r\ndef g():\r\n    return 1\r\n")
    result = toolbox.call("str_replace", {"path": "app.py", "old": "def g():\r\n    return 1",
                                          "new": "def g():\r\n    return 2"})
    assert not result.is_error and "at line 4" in result.output and "return 2" in result.output
    assert target.read_bytes() == b"def f():\r\n    return 1\r\n\r\ndef g():\r\n    return 2\r\n"  # CRLF kept

    several = toolbox.call("str_replace", {"path": "app.py", "old": "return", "new": "yield"})
    assert several.is_error and "occurs 2 times" in several.output and "lines 2, 5" in several.output
    missing = toolbox.call("str_replace", {"path": "app.py", "old": "return 3", "new": "return 4"})
    assert missing.is_error and "not found in app.py" in missing.output
    crlf = toolbox.call("str_replace", {"path": "app.py", "old": "def f():\n", "new": "def h():\n"})
    assert crlf.is_error and "Windows line endings" in crlf.output
    padded = toolbox.call("str_replace", {"path": "app.py", "old": "  def f():  ", "new": "def h():"})
    assert padded.is_error and "leading and trailing whitespace" in padded.output
    assert toolbox.call("str_replace", {"path": "app.py", "old": "", "new": "x"}).is_error
    assert "identical" in toolbox.call("str_replace", {"path": "app.py", "old": "f", "new": "f"}).output
    assert "cannot open nope.py" in toolbox.call("str_replace", {"path": "nope.py", "old": "a", "new": "b"}).output
    assert target.read_bytes().count(b"return") == 2  # failed edits changed nothing


@pytest.mark.parametrize("path", ["../outside.txt", "sub/../../outside.txt", "{outside}", "/etc/passwd"])
def test_paths_outside_the_workspace_are_refused(toolbox, outside, path):
    path = path.format(outside=outside)
    calls = [("read_file", {"path": path}), ("write_file", {"path": path, "content": "pwned\n"}),
             ("str_replace", {"path": path, "old": "host", "new": "pwned"})]
    for name, arguments in calls:
        result = toolbox.call(name, arguments)
        assert result.is_error and "outside the workspace" in result.output, (name, result.output)
    assert outside.read_text() == "host secret\n"


def test_symlinks_leading_out_are_refused(toolbox, workspace, outside, tmp_path):
    (tmp_path / "outdir").mkdir()
    (workspace / "link.txt").symlink_to(outside)
    (workspace / "dirlink").symlink_to(tmp_path / "outdir")
    (workspace / "dangling").symlink_to(tmp_path / "not-yet.txt")
    for name, arguments in [("read_file", {"path": "link.txt"}),
                            ("str_replace", {"path": "link.txt", "old": "host", "new": "pwned"}),
                            ("write_file", {"path": "link.txt", "content": "pwned"}),
                            ("write_file", {"path": "dirlink/new.txt", "content": "pwned"}),
                            ("write_file", {"path": "dangling", "content": "pwned"})]:
        result = toolbox.call(name, arguments)
        assert result.is_error and "symbolic link" in result.output, (name, result.output)
    assert outside.read_text() == "host secret\n"
    assert list((tmp_path / "outdir").iterdir()) == [] and not (tmp_path / "not-yet.txt").exists()
    (workspace / "real.txt").write_text("inside\n")
    (workspace / "alias.txt").symlink_to(workspace / "real.txt")
    assert read(toolbox, "alias.txt").output == "     1\tinside\n"  # a link that stays inside is fine


def test_hard_linked_files_are_not_written(toolbox, workspace, outside):
    os.link(outside, workspace / "hard.txt")
    for name, arguments in [("write_file", {"path": "hard.txt", "content": "pwned"}),
                            ("str_replace", {"path": "hard.txt", "old": "host", "new": "pwned"})]:
        result = toolbox.call(name, arguments)
        assert result.is_error and "2 hard links" in result.output
    assert outside.read_text() == "host secret\n"


@pytest.mark.needs_bwrap
def test_paths_the_sandbox_hides_stay_hidden(workspace):
    (workspace / ".dvc").mkdir()
    (workspace / ".dvc" / "config.local").write_text("dvc-secret\n")
    # hiding a folder around the workspace (like /home for a user's checkout) must not lock the tools out
    toolbox = Toolbox(workspace, BwrapSandbox(workspace, hide_paths=[workspace / ".dvc", workspace.parent]))
    assert toolbox.call("write_file", {"path": "ok.txt", "content": "fine\n"}).output.startswith("Wrote")
    for name, arguments in [("read_file", {"path": ".dvc/config.local"}),
                            ("write_file", {"path": ".dvc/config.local", "content": "x"})]:
        result = toolbox.call(name, arguments)
        assert result.is_error and "hidden from the agent" in result.output
    assert "dvc-secret" not in toolbox.call("bash", {"command": "cat .dvc/config.local"}).output


def test_arguments_are_checked_against_the_schema(toolbox, workspace):
    (workspace / "a.txt").write_text("a\nb\n")
    cases = [  # arguments as the model's JSON text, the way they arrive
        ("read_file", '{"start_line": 1}', "missing the required argument 'path'"),
        ("read_file", '{"pth": "a.txt"}', "has no argument 'pth'"),
        ("read_file", '{"path": 3}', "'path' must be a string, got an integer 3"),
        ("read_file", '{"path": "a.txt", "start_line": "2"}', "'start_line' must be an integer, got a string"),
        ("read_file", '{"path": "a.txt", "start_line": true}', "must be an integer, got a boolean"),
        ("read_file", '{"path": "a.txt"', "not valid JSON"),
        ("read_file", '["a.txt"]', "must be a JSON object, got an array"),
        ("write_file", {"path": "b.txt"}, "write_file(path: string, content: string)"),
    ]
    for name, arguments, message in cases:
        result = toolbox.call(name, arguments)
        assert result.is_error and message in result.output, (arguments, result.output)
    # what models often send for optional numbers still works
    assert read(toolbox, "a.txt", start_line=2.0, end_line=None).output == "     2\tb\n"
    assert toolbox.call("read_file", '{"path": "a.txt"}').output == "     1\ta\n     2\tb\n"


def test_unknown_tool_lists_the_tools(toolbox):
    result = toolbox.call("python", {"code": "print(1)"})
    assert result.is_error
    assert result.output == ("Error: Unknown tool 'python'. "
                             "Available tools: bash, read_file, write_file, str_replace, finish.")


def test_finish_ends_with_the_summary(toolbox):
    result = toolbox.call("finish", {"summary": "fixed the parser; tests pass"})
    assert result.finished and result.summary == "fixed the parser; tests pass" and not result.is_error


@pytest.mark.parametrize("kind", [pytest.param("bwrap", marks=pytest.mark.needs_bwrap), "none"])
def test_bash_tool_reports_output_exit_code_and_timeouts(workspace, kind):
    sandbox = BwrapSandbox(workspace, timeout_s=1) if kind == "bwrap" else NoSandbox(workspace, timeout_s=1)
    toolbox = Toolbox(workspace, sandbox)
    assert toolbox.call("bash", {"command": "echo hi; exit 2"}) == ToolResult("hi\n[exit code 2]")
    slow = toolbox.call("bash", {"command": "sleep 5"})
    assert slow.is_error and "timed out after 1 s" in slow.output
    assert toolbox.call("bash", {"command": "  "}).is_error


def test_toolbox_and_sandbox_must_share_the_workspace(workspace, tmp_path):
    with pytest.raises(ValueError, match="not in the workspace"):
        Toolbox(workspace, NoSandbox(tmp_path / "elsewhere"))


def test_well_formed_call_checks_name_and_arguments_only():
    def fn(name, arguments):
        return {"type": "function", "function": {"name": name, "arguments": arguments}}

    assert well_formed_call(fn("bash", {"command": "ls"}), TOOL_SCHEMAS)
    assert well_formed_call(fn("read_file", '{"path": "a.py", "start_line": 2.0}'), TOOL_SCHEMAS)  # JSON text
    assert well_formed_call(fn("read_file", {"path": "/etc/passwd"}), TOOL_SCHEMAS)  # refused when run, but well-formed
    assert not well_formed_call(fn("shell", {"command": "ls"}), TOOL_SCHEMAS)  # no such tool
    assert not well_formed_call(fn("bash", {"cmd": "ls"}), TOOL_SCHEMAS)  # unknown argument, required one missing
    assert not well_formed_call(fn("finish", {}), TOOL_SCHEMAS)
    assert not well_formed_call(fn("read_file", {"path": "a.py", "start_line": "2"}), TOOL_SCHEMAS)
    assert not well_formed_call(fn("bash", '{"command": '), TOOL_SCHEMAS)  # not JSON
    assert not well_formed_call(fn("bash", {"command": "ls"}), [])  # not offered
