"""``limi import``: each format's documented shape (fixtures written here) becomes the messages and rendered
tokens worked out by hand, with provenance and verification in meta; the exports round-trip through it;
bad input names the file and line or index; curate keeps unverified imports out and verified ones in."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from pipelines.agent.tools import TOOL_SCHEMAS, _checked_arguments
from pipelines.core.errors import UserError
from pipelines.core.params import parse_params
from pipelines.core.schema import read_trajectories
from pipelines.curate import curate, input_files
from pipelines.tools.importers import detect_format, import_paths
from pipelines.training.data import encode_sample
from tests.tools.test_cli import episode, limi, write_jsonl

PARAMETERS = {s["function"]["name"]: s["function"]["parameters"] for s in TOOL_SCHEMAS}


@pytest.fixture(scope="module")
def tokenizer(base_model_dir):
    return AutoTokenizer.from_pretrained(base_model_dir)


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def call(cid: str, name: str, **arguments) -> dict:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": arguments}}


def result(cid: str, content: str) -> dict:
    return {"role": "tool", "tool_call_id": cid, "content": content}


def one(path: Path, fmt: str | None = None, **kw) -> dict:
    [(_, record)] = import_paths([path], fmt, **kw)
    return record


def rendered(tokenizer, record: dict) -> str:
    return tokenizer.decode(encode_sample(tokenizer, record)["input_ids"])


def assert_renders_as(tokenizer, record: dict, expected_messages: list[dict], fragments: list[str]) -> None:
    """The imported messages are the expected ones, render to the same token ids as they do, the mapped calls
    fit this project's tool schemas, and the text holds the fragments written out by hand."""
    assert record["messages"] == expected_messages
    assert record["tools"] == TOOL_SCHEMAS
    by_hand = {"messages": expected_messages, "tools": TOOL_SCHEMAS}
    assert encode_sample(tokenizer, record) == encode_sample(tokenizer, by_hand)
    for m in record["messages"]:
        for c in m.get("tool_calls") or []:
            if c["function"]["name"] in PARAMETERS:
                _checked_arguments(c["function"]["name"], PARAMETERS[c["function"]["name"]], c["function"]["arguments"])
    text = rendered(tokenizer, record)
    for fragment in fragments:
        assert fragment in text, fragment


# ------------------------------------------------------------------ mini-swe-agent
def mini_text_mode() -> dict:
    """A mini-swe-agent 1.x trajectory: actions as bash blocks, observations as user messages."""
    return {
        "info": {"exit_status": "Submitted", "submission": "diff --git a/calc.py b/calc.py\n+    return a + b\n",
                 "model_stats": {"instance_cost": 0.0125, "api_calls": 3},
                 "config": {"model": {"model_name": "anthropic/claude-sonnet-4-20250514"}, "agent": {}},
                 "mini_version": "1.9.0"},
        "messages": [
            {"role": "system", "content": "You are a helpful assistant that can interact with a computer."},
            {"role": "user", "content": "<pr_description>\nadd() subtracts.\n</pr_description>"},
            {"role": "assistant", "content": "THOUGHT: Let me find the function.\n\n```bash\ngrep -n 'def add' calc.py\n```"},
            {"role": "user", "content": "<returncode>0</returncode>\n<output>\n1:def add(a, b):\n</output>"},
            {"role": "assistant", "content": "I will fix it now."},
            {"role": "user", "content": "Please always provide EXACTLY ONE action in triple backticks, found 0 actions."},
            {"role": "assistant", "content": "THOUGHT: Fix and submit.\n\n```bash\nsed -i 's/a - b/a + b/' calc.py "
                                             "&& echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git diff\n```"},
            {"role": "user", "content": "diff --git a/calc.py b/calc.py\n+    return a + b\n"},
        ],
        "trajectory_format": "mini-swe-agent-1",
    }


def test_mini_swe_agent_bash_blocks_become_bash_calls(tmp_path, tokenizer):
    path = write_json(tmp_path / "run" / "calc__calc-1" / "calc__calc-1.traj.json", mini_text_mode())
    record = one(path)  # detected by its name
    fix = "sed -i 's/a - b/a + b/' calc.py && echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git diff"
    expected = [
        {"role": "system", "content": "You are a helpful assistant that can interact with a computer."},
        {"role": "user", "content": "<pr_description>\nadd() subtracts.\n</pr_description>"},
        {"role": "assistant", "content": "THOUGHT: Let me find the function.",
         "tool_calls": [call("call_0_0", "bash", command="grep -n 'def add' calc.py")]},
        result("call_0_0", "1:def add(a, b):\n[exit code 0]"),  # the bash tool's own form
        {"role": "assistant", "content": "I will fix it now."},  # no block: a format error, kept as text
        {"role": "user", "content": "Please always provide EXACTLY ONE action in triple backticks, found 0 actions."},
        {"role": "assistant", "content": "THOUGHT: Fix and submit.", "tool_calls": [call("call_2_0", "bash", command=fix)]},
        result("call_2_0", "diff --git a/calc.py b/calc.py\n+    return a + b\n"),
    ]
    assert_renders_as(tokenizer, record, expected, [
        '<|im_start|>assistant\nTHOUGHT: Let me find the function.\n<tool_call>\n{"name": "bash", "arguments": '
        '{"command": "grep -n \'def add\' calc.py"}}\n</tool_call><|im_end|>\n',
        "<|im_start|>tool\n1:def add(a, b):\n[exit code 0]<|im_end|>\n"])
    meta = record["meta"]
    assert meta["source"] == "import:mini-swe-agent" and meta["task_id"] == "calc__calc-1"
    assert meta["teacher"] == "anthropic/claude-sonnet-4-20250514" and meta["tokens"] == {"cost_usd": 0.0125}
    assert meta["imported"] == {"format": "mini-swe-agent", "file": str(path), "index": 0,
                                "model": "anthropic/claude-sonnet-4-20250514", "exit_status": "Submitted",
                                "verification": "unverified", "trajectory_format": "mini-swe-agent-1"}
    # Submitted says the agent stopped, not that the fix is right: no verdict
    assert meta["passed"] is False and "final" not in meta and meta["termination"] == "finished"
    assert meta["final_diff"].startswith("diff --git") and meta["format_errors"] == 1
    assert meta["steps"] == 3 and meta["tool_calls"] == 2 and meta["query"].startswith("<pr_description>")
    assert "domain" not in meta and "rounds_used" not in meta  # unstated, not defaulted


def test_mini_swe_agent_v2_tool_calls_and_listed_actions(tmp_path, tokenizer):
    data = {
        "info": {"exit_status": "Submitted", "submission": "", "resolved": True, "mini_version": "2.0.0",
                 "config": {"model": {"model_name": "openai/gpt-5"}}},
        "messages": [
            {"role": "system", "content": "You can call a bash tool."},
            {"role": "user", "content": "Create hello.txt."},
            {"role": "assistant", "content": "", "reasoning_content": "Start by looking.",
             "tool_calls": [{"id": "call_x1", "type": "function",
                             "function": {"name": "bash", "arguments": json.dumps({"command": "ls"})}}],
             "extra": {"actions": [{"command": "ls", "tool_call_id": "call_x1"}], "cost": 0.001}},
            {"role": "tool", "tool_call_id": "call_x1", "content": "<returncode>0</returncode>\n<output>\n</output>",
             "extra": {"returncode": 0}},
            {"role": "assistant", "content": "Writing it.\n\n```mswea_bash_command\necho hi > hello.txt\n```",
             "extra": {"actions": [{"command": "echo hi > hello.txt"}]}},
            {"role": "user", "content": "<returncode>0</returncode>\n<output>\n</output>"},
            {"role": "exit", "content": "", "extra": {"exit_status": "Submitted", "submission": ""}},
        ],
        "trajectory_format": "mini-swe-agent-1.1",
    }
    record = one(write_json(tmp_path / "hello.json", data), "mini-swe-agent")
    expected = [
        {"role": "system", "content": "You can call a bash tool."},
        {"role": "user", "content": "Create hello.txt."},
        {"role": "assistant", "content": "", "reasoning_content": "Start by looking.",
         "tool_calls": [call("call_x1", "bash", command="ls")]},
        result("call_x1", "[exit code 0]"),
        {"role": "assistant", "content": "Writing it.", "tool_calls": [call("call_1_0", "bash", command="echo hi > hello.txt")]},
        result("call_1_0", "[exit code 0]"),
    ]
    assert_renders_as(tokenizer, record, expected, [
        '<|im_start|>assistant\n<think>\nStart by looking.\n</think>\n<tool_call>\n{"name": "bash", "arguments": '
        '{"command": "ls"}}\n</tool_call><|im_end|>'])
    meta = record["meta"]  # an explicit resolved flag is a verdict
    assert meta["passed"] is True and meta["imported"]["verification"] == "passed"
    assert meta["imported"]["verified_by"] == "info.resolved" and meta["final"] == {"passed": True, "score": 1.0}


# ------------------------------------------------------------------ SWE-agent
def swe_agent_traj() -> dict:
    file_text = 'def f():\n    return "it\'s fixed"\n'
    arguments = {"command": "str_replace", "path": "/repo/a.py", "old_str": "x = 1", "new_str": "x = 2"}
    return {
        "environment": "main",
        "trajectory": [
            {"response": "Let me look.\n\n```\nls -F\n```", "thought": "Let me look.\n\n", "action": "ls -F\n",
             "observation": "a.py\nsetup.py\n", "execution_time": 0.1, "state": {"working_dir": "/repo"}},
            {"response": "", "thought": "Create the fix.",
             "action": f"str_replace_editor create /repo/fix.py --file_text {shlex.quote(file_text)}",
             "observation": "File created successfully at: /repo/fix.py", "execution_time": 0.1, "state": {}},
            {"response": "", "thought": "Change x.", "action": "str_replace_editor str_replace /repo/a.py "
             "--old_str 'x = 1' --new_str 'x = 2'", "observation": "The file /repo/a.py has been edited.",
             "tool_calls": [{"id": "toolu_01", "type": "function",
                             "function": {"name": "str_replace_editor", "arguments": json.dumps(arguments)}}],
             "tool_call_ids": ["toolu_01"], "execution_time": 0.1, "state": {}},
            {"response": "", "thought": "Check it.", "action": "open a.py",
             "observation": "[File: /repo/a.py (1 lines total)]\n1:x = 2", "execution_time": 0.1, "state": {}},
            {"response": "", "thought": "Done.", "action": "submit",
             "observation": "diff --git a/a.py b/a.py\n-x = 1\n+x = 2\n", "execution_time": 0.1, "state": {}},
        ],
        "history": [
            {"role": "system", "content": "SETTING: You are an autonomous programmer.", "agent": "main",
             "message_type": "system_prompt"},
            {"role": "user", "content": "Here is a demonstration of how to solve a task.", "agent": "main",
             "is_demo": True, "message_type": "demonstration"},
            {"role": "user", "content": "We're currently solving the following issue: x must be 2.", "agent": "main",
             "message_type": "observation"},
            {"role": "assistant", "content": "Let me look.", "thought": "Let me look.", "action": "ls -F\n",
             "agent": "main", "message_type": "action"},
        ],
        "info": {"exit_status": "submitted", "submission": "diff --git a/a.py b/a.py\n-x = 1\n+x = 2\n",
                 "model_stats": {"instance_cost": 0.42, "tokens_sent": 1200, "tokens_received": 300, "api_calls": 5},
                 "swe_agent_version": "1.0.1"},
        "replay_config": json.dumps({"agent": {"model": {"name": "claude-3-7-sonnet-20250219"}}}),
    }


def test_swe_agent_steps_become_calls_of_this_projects_tools(tmp_path, tokenizer):
    path = write_json(tmp_path / "repo__a-7" / "repo__a-7.traj", swe_agent_traj())
    record = one(path)
    expected = [
        {"role": "system", "content": "SETTING: You are an autonomous programmer."},
        {"role": "user", "content": "We're currently solving the following issue: x must be 2."},  # demo left out
        {"role": "assistant", "content": "Let me look.", "tool_calls": [call("call_0_0", "bash", command="ls -F\n")]},
        result("call_0_0", "a.py\nsetup.py\n"),
        {"role": "assistant", "content": "Create the fix.", "tool_calls": [
            call("call_1_0", "write_file", path="/repo/fix.py", content='def f():\n    return "it\'s fixed"\n')]},
        result("call_1_0", "File created successfully at: /repo/fix.py"),
        {"role": "assistant", "content": "Change x.", "tool_calls": [
            call("toolu_01", "str_replace", path="/repo/a.py", old="x = 1", new="x = 2")]},
        result("toolu_01", "The file /repo/a.py has been edited."),
        {"role": "assistant", "content": "Check it.", "tool_calls": [call("call_3_0", "bash", command="open a.py")]},
        result("call_3_0", "[File: /repo/a.py (1 lines total)]\n1:x = 2"),
        {"role": "assistant", "content": "Done.", "tool_calls": [call("call_4_0", "finish", summary="")]},
        result("call_4_0", "diff --git a/a.py b/a.py\n-x = 1\n+x = 2\n"),
    ]
    assert_renders_as(tokenizer, record, expected, [
        '<tool_call>\n{"name": "write_file", "arguments": {"path": "/repo/fix.py", "content": '
        '"def f():\\n    return \\"it\'s fixed\\"\\n"}}\n</tool_call>',
        '<tool_call>\n{"name": "str_replace", "arguments": {"path": "/repo/a.py", "old": "x = 1", "new": "x = 2"}}'])
    meta = record["meta"]
    assert meta["task_id"] == "repo__a-7" and meta["teacher"] == "claude-3-7-sonnet-20250219"
    assert meta["tokens"] == {"prompt": 1200, "completion": 300, "cost_usd": 0.42}
    assert meta["imported"]["unmapped_actions"] == {"open": 1}  # SWE-agent's own command, kept as it ran
    assert meta["imported"]["exit_status"] == "submitted" and meta["imported"]["verification"] == "unverified"
    assert meta["passed"] is False and meta["final_diff"].endswith("+x = 2\n")


def test_a_swe_bench_report_verifies_by_instance(tmp_path):
    run = tmp_path / "run"
    for name in ("repo__a-1", "repo__a-2", "repo__a-3"):
        write_json(run / name / f"{name}.traj", swe_agent_traj())
    report = write_json(tmp_path / "results.json", {"resolved_ids": ["repo__a-1"], "unresolved_ids": ["repo__a-2"],
                                                     "error_ids": ["repo__a-3"], "total_instances": 3})
    records = {r["meta"]["task_id"]: r["meta"] for _, r in import_paths([run], "swe-agent", resolved=report)}
    assert records["repo__a-1"]["passed"] is True and records["repo__a-1"]["imported"]["verified_by"] == str(report)
    assert records["repo__a-2"]["passed"] is False and records["repo__a-2"]["imported"]["verification"] == "failed"
    assert records["repo__a-2"]["final"] == {"passed": False, "score": 0.0}
    assert records["repo__a-3"]["imported"]["verification"] == "unverified"  # the evaluation errored: no verdict
    with pytest.raises(UserError, match=r"bad-report.json: not an evaluation report"):
        import_paths([run], "swe-agent", resolved=write_json(tmp_path / "bad-report.json", {"resolved": 3}))


# ------------------------------------------------------------------ OpenHands
def oh_call(cid: str, response: str, function: str, model: str = "claude-sonnet-4", arguments: dict | None = None) -> dict:
    message = {"tool_calls": [{"id": cid, "type": "function",
                               "function": {"name": function, "arguments": json.dumps(arguments or {})}}]}
    return {"function_name": function, "tool_call_id": cid, "total_calls_in_response": 1,
            "model_response": {"id": response, "model": model, "choices": [{"message": message}]}}


def openhands_events() -> list[dict]:
    edit = {"file_text": None, "insert_line": None, "content": "", "start": 1, "end": -1, "impl_source": "oh_aci",
            "thought": ""}
    return [
        {"id": 0, "source": "agent", "message": "", "action": "system",
         "args": {"content": "You are OpenHands agent.", "agent_class": "CodeActAgent"}},
        {"id": 1, "source": "user", "message": "", "action": "message",
         "args": {"content": "Fix a.py so x is 2.", "image_urls": None, "wait_for_response": False}},
        {"id": 2, "source": "user", "message": "", "action": "recall",
         "args": {"recall_type": "workspace_context", "query": "Fix a.py so x is 2.", "thought": ""}},
        {"id": 3, "source": "environment", "message": "", "cause": 2, "observation": "recall",
         "content": "Added workspace context", "extras": {}},
        {"id": 4, "source": "agent", "message": "Running command: cat a.py", "action": "run",
         "args": {"command": "cat a.py", "is_input": False, "thought": "Let me read the file.", "blocking": False,
                  "hidden": False, "confirmation_state": "confirmed"},
         "tool_call_metadata": oh_call("toolu_1", "resp-1", "execute_bash"),
         "llm_metrics": {"accumulated_cost": 0.01, "accumulated_token_usage": {"prompt_tokens": 900, "completion_tokens": 40}}},
        {"id": 5, "source": "agent", "message": "Command `cat a.py` executed with exit code 0.", "cause": 4,
         "observation": "run", "content": "x = 1",
         "extras": {"command": "cat a.py", "metadata": {"exit_code": 0, "pid": -1, "working_dir": "/workspace"}},
         "success": True, "tool_call_metadata": oh_call("toolu_1", "resp-1", "execute_bash")},
        {"id": 6, "source": "agent", "message": "", "action": "think", "args": {"thought": "x must become 2."},
         "tool_call_metadata": oh_call("toolu_2", "resp-2", "think")},
        {"id": 7, "source": "agent", "message": "", "cause": 6, "observation": "think",
         "content": "Your thought has been logged.", "extras": {}},
        {"id": 8, "source": "agent", "message": "", "action": "edit",
         "args": {**edit, "path": "/workspace/a.py", "command": "str_replace", "old_str": "x = 1", "new_str": "x = 2"},
         "tool_call_metadata": oh_call("toolu_3", "resp-3", "str_replace_editor")},
        {"id": 9, "source": "agent", "message": "", "cause": 8, "observation": "edit",
         "content": "The file /workspace/a.py has been edited.", "extras": {"path": "/workspace/a.py"}},
        {"id": 10, "source": "agent", "message": "", "action": "edit",  # a second call of the same response
         "args": {**edit, "path": "/workspace/test_a.py", "command": "create", "file_text": "import a\nassert a.x == 2\n",
                  "old_str": None, "new_str": None},
         "tool_call_metadata": oh_call("toolu_4", "resp-3", "str_replace_editor")},
        {"id": 11, "source": "agent", "message": "", "cause": 10, "observation": "edit",
         "content": "File created successfully at: /workspace/test_a.py", "extras": {}},
        {"id": 12, "source": "agent", "message": "", "action": "run_ipython",
         "args": {"code": "print(1 + 1)", "thought": "", "include_extra": True, "confirmation_state": "confirmed",
                  "kernel_init_code": ""},
         "tool_call_metadata": oh_call("toolu_5", "resp-4", "execute_ipython_cell", arguments={"code": "print(1 + 1)"})},
        {"id": 13, "source": "agent", "message": "", "cause": 12, "observation": "run_ipython", "content": "2",
         "extras": {"code": "print(1 + 1)"}},
        {"id": 14, "source": "agent", "message": "", "action": "read",
         "args": {"path": "/workspace/a.py", "start": 0, "end": -1, "thought": "Check it.", "impl_source": "oh_aci",
                  "view_range": [1, 5]},
         "tool_call_metadata": oh_call("toolu_6", "resp-5", "str_replace_editor")},
        {"id": 15, "source": "agent", "message": "", "cause": 14, "observation": "read", "content": "     1\tx = 2\n",
         "extras": {"path": "/workspace/a.py"}},
        {"id": 16, "source": "agent", "message": "", "action": "finish",
         "args": {"final_thought": "x is now 2 and a test checks it.", "task_completed": "true", "outputs": {},
                  "thought": ""},
         "tool_call_metadata": oh_call("toolu_7", "resp-6", "finish"),
         "llm_metrics": {"accumulated_cost": 0.05, "accumulated_token_usage": {"prompt_tokens": 5000, "completion_tokens": 200}}},
        {"id": 17, "source": "environment", "message": "", "observation": "agent_state_changed", "content": "",
         "extras": {"agent_state": "finished", "reason": ""}},
    ]


def test_openhands_events_become_one_conversation(tmp_path, tokenizer):
    path = write_json(tmp_path / "session.json", openhands_events())
    assert detect_format(path) == "openhands"
    record = one(path)
    expected = [
        {"role": "system", "content": "You are OpenHands agent."},
        {"role": "user", "content": "Fix a.py so x is 2."},
        {"role": "assistant", "content": "Let me read the file.", "tool_calls": [call("toolu_1", "bash", command="cat a.py")]},
        result("toolu_1", "x = 1\n[exit code 0]"),
        {"role": "assistant", "content": "x must become 2.", "tool_calls": [  # the logged thought, then both calls
            call("toolu_3", "str_replace", path="/workspace/a.py", old="x = 1", new="x = 2"),
            call("toolu_4", "write_file", path="/workspace/test_a.py", content="import a\nassert a.x == 2\n")]},
        result("toolu_3", "The file /workspace/a.py has been edited."),
        result("toolu_4", "File created successfully at: /workspace/test_a.py"),
        {"role": "assistant", "content": "", "tool_calls": [call("toolu_5", "execute_ipython_cell", code="print(1 + 1)")]},
        result("toolu_5", "2"),
        {"role": "assistant", "content": "Check it.", "tool_calls": [
            call("toolu_6", "read_file", path="/workspace/a.py", start_line=1, end_line=5)]},
        result("toolu_6", "     1\tx = 2\n"),
        {"role": "assistant", "content": "", "tool_calls": [call("toolu_7", "finish", summary="x is now 2 and a test checks it.")]},
    ]
    assert_renders_as(tokenizer, record, expected, [
        '<|im_start|>assistant\nx must become 2.\n<tool_call>\n{"name": "str_replace", "arguments": {"path": '
        '"/workspace/a.py", "old": "x = 1", "new": "x = 2"}}\n</tool_call>\n<tool_call>\n{"name": "write_file"',
        "<|im_start|>tool\nx = 1\n[exit code 0]<|im_end|>"])
    meta = record["meta"]
    assert meta["task_id"] == "session" and meta["teacher"] == "claude-sonnet-4" and meta["termination"] == "finished"
    assert meta["tokens"] == {"prompt": 5000, "completion": 200, "cost_usd": 0.05}
    assert meta["imported"]["unmapped_actions"] == {"execute_ipython_cell": 1}
    # task_completed is the agent's claim, not a verdict
    assert meta["imported"]["exit_status"] == "finished" and meta["imported"]["verification"] == "unverified"


def test_openhands_evaluation_rows_carry_their_resolved_flag(tmp_path):
    events = openhands_events()
    short = events[:6] + events[16:]  # system, request, one command, finish
    rows = [{"instance_id": f"repo__a-{n}", "instruction": "Fix a.py so x is 2.", "history": short,
             "metadata": {"llm_config": {"model": "litellm_proxy/claude-sonnet-4"}},
             "test_result": {"git_patch": "diff --git a/a.py b/a.py\n"}, "report": {"resolved": resolved}}
            for n, resolved in ((1, True), (2, False))]
    pairs = [[short[0], short[1]], [short[4], short[5]], short[6:]]  # an older row: [action, observation] pairs
    rows.append({**rows[0], "instance_id": "repo__a-3", "report": {}, "history": pairs})
    path = write_jsonl(tmp_path / "output.jsonl", rows)
    records = [r for _, r in import_paths([path])]
    assert [r["meta"]["imported"]["verification"] for r in records] == ["passed", "failed", "unverified"]
    assert [r["meta"]["imported"]["line"] for r in records] == [1, 2, 3]
    assert records[0]["meta"]["task_id"] == "repo__a-1" and records[0]["meta"]["imported"]["verified_by"] == "report.resolved"
    assert records[0]["meta"]["teacher"] == "litellm_proxy/claude-sonnet-4"
    assert records[0]["meta"]["final_diff"] == "diff --git a/a.py b/a.py\n"
    assert records[2]["messages"] == records[0]["messages"] and len(records[0]["messages"]) == 5


# ------------------------------------------------------------------ LIMI / SII CLI rows
def test_limi_rows_with_string_and_object_arguments(tmp_path, tokenizer):
    shell = {"name": "run_shell", "description": "Run a shell command.",
             "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}}
    rows = [
        {"messages": [{"role": "system", "content": "You are SII CLI."}, {"role": "user", "content": "List files."},
                      {"role": "assistant", "content": "", "tool_calls": [
                          {"id": "c1", "type": "function", "function": {"name": "run_shell", "arguments": '{"cmd": "ls"}'}}]},
                      {"role": "tool", "tool_call_id": "c1", "content": "a.py"},
                      {"role": "assistant", "content": "There is a.py."}],
         "tools": json.dumps([{"type": "function", "function": shell}])},
        {"messages": [{"role": "user", "content": "Again."},
                      {"role": "assistant", "content": "Sure.", "tool_calls": [
                          {"type": "function", "function": {"name": "run_shell", "arguments": {"cmd": "ls -a"}}}]},
                      {"role": "tool", "tool_call_id": "call_0_0", "content": ".\n..\na.py"}],
         "tools": [shell]},
    ]
    path = write_jsonl(tmp_path / "limi.jsonl", rows)
    first, second = (r for _, r in import_paths([path]))
    assert first["messages"][2]["tool_calls"] == [call("c1", "run_shell", cmd="ls")]
    assert second["messages"][1]["tool_calls"] == [call("call_0_0", "run_shell", cmd="ls -a")]  # an id given
    assert first["tools"] == second["tools"] == [{"type": "function", "function": shell}]
    assert '<tool_call>\n{"name": "run_shell", "arguments": {"cmd": "ls"}}\n</tool_call>' in rendered(tokenizer, first)
    assert first["meta"]["imported"] == {"format": "limi", "file": str(path), "index": 0, "line": 1,
                                         "verification": "unverified"}
    assert first["meta"]["task_id"] == "limi-1" and second["meta"]["task_id"] == "limi-2"


# ------------------------------------------------------------------ round trips
def test_exports_round_trip_through_import(tmp_path, tokenizer):
    src = write_jsonl(tmp_path / "data" / "sft" / "train.jsonl", [episode("aa11", "seed-greet"), episode("bb22", "seed-two")])
    originals = read_trajectories(src)
    for fmt in ("jsonl", "sharegpt", "mini-swe-agent"):
        result = limi("export", fmt, "--out", str(tmp_path / fmt), root=tmp_path)
        assert result.returncode == 0, result.stderr
    back_jsonl = [r for _, r in import_paths([tmp_path / "jsonl" / "train.jsonl"], "limi")]
    back_mini = [r for _, r in import_paths([tmp_path / "mini-swe-agent"])]  # a folder of .traj.json
    back_sharegpt = [r for _, r in import_paths([tmp_path / "sharegpt"], "sharegpt")]  # not dataset_info.json
    for original, jsonl, mini, sharegpt in zip(originals, back_jsonl, back_mini, back_sharegpt):
        ids = encode_sample(tokenizer, original)["input_ids"]
        for back in (jsonl, mini):  # whole: the same messages, tools, tokens and verdict
            assert back["messages"] == original["messages"] and back["tools"] == original["tools"]
            assert encode_sample(tokenizer, back)["input_ids"] == ids
            meta = back["meta"]
            assert meta["passed"] is True and meta["imported"]["verification"] == "passed"
            assert (meta["task_id"], meta["episode_key"], meta["category"]) == (
                original["meta"]["task_id"], original["meta"]["episode_key"], original["meta"]["category"])
            assert meta["imported"]["original_source"] == "human" and meta["source"].startswith("import:")
        # ShareGPT has no place for text beside a call nor for results no assistant turn answers (the finish
        # results): the rest comes back as it was, ids included
        expected = [dict(m, content="") if m.get("tool_calls") else m for m in original["messages"]
                    if not (m["role"] == "tool" and m["content"] == "Finished.")]
        assert sharegpt["messages"] == expected and sharegpt["tools"] == original["tools"]
        assert sharegpt["meta"]["imported"]["verification"] == "unverified"  # ShareGPT carries no verdict
    preds = json.loads((tmp_path / "mini-swe-agent" / "preds.json").read_text())
    assert preds["aa11"] == {"instance_id": "seed-greet", "model_name_or_path": "replay", "model_patch": ""}
    traj = json.loads((tmp_path / "mini-swe-agent" / "aa11" / "aa11.traj.json").read_text())
    assert traj["trajectory_format"] == "mini-swe-agent-1.1" and traj["info"]["exit_status"] == "Submitted"
    assert isinstance(traj["messages"][2]["tool_calls"][0]["function"]["arguments"], str)
    assert "checks" not in json.dumps(traj["info"])  # the hidden check commands stay home


# ------------------------------------------------------------------ the command
def test_the_command_names_every_format():
    from pipelines.tools import cli, importers

    assert cli.IMPORT_FORMATS == importers.FORMATS


def test_limi_import_detects_formats_and_writes_one_file(tmp_path):
    inputs = tmp_path / "in"
    mini = mini_text_mode()
    mini["messages"][3]["content"] = "<returncode>0</returncode>\n<output>\nGITHUB_TOKEN=ghp_notreal123456\n</output>"
    write_json(inputs / "calc__calc-1.traj.json", mini)
    write_json(inputs / "repo__a-7.traj", swe_agent_traj())
    write_json(tmp_path / "events.json", openhands_events())
    out = tmp_path / "imported.jsonl"
    out.write_text("old\n")
    run = limi("import", str(inputs), str(tmp_path / "events.json"), "--out", str(out), root=tmp_path,
               env={"GITHUB_TOKEN": "ghp_notreal123456"})
    assert run.returncode == 0, run.stderr
    assert "ghp_notreal123456" not in out.read_text() and "GITHUB_TOKEN=***" in out.read_text()  # scrubbed
    assert "3 trajectories (1 mini-swe-agent, 1 openhands, 1 swe-agent) to imported.jsonl" in run.stdout
    assert "verification: 0 passed, 0 failed, 3 unverified" in run.stdout
    assert "execute_ipython_cell x1" in run.stdout and "open x1" in run.stdout
    records = read_trajectories(out)
    assert [r["meta"]["source"] for r in records] == ["import:mini-swe-agent", "import:swe-agent", "import:openhands"]
    assert [r["meta"]["imported"]["file"] for r in records] == ["in/calc__calc-1.traj.json", "in/repo__a-7.traj",
                                                                "events.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.json", "imported.jsonl", "in"]  # no temp left
    shown = limi("show", f"{out}:2", root=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "imported  swe-agent from in/repo__a-7.traj [0]   exit status submitted, verification unverified" in shown.stdout
    assert "  → write_file" in shown.stdout


def test_bad_input_is_one_line_naming_file_and_place(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("kept\n")
    rows = [{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]},
            {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "", "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "bash", "arguments": "{cmd: ls}"}}]}]}]
    cases = [
        (["limi", str(write_jsonl(tmp_path / "rows.jsonl", rows))],
         "rows.jsonl:2: messages[1]: tool_calls[0]: tool-call arguments are not valid JSON"),
        (["openhands", str(write_json(tmp_path / "ev.json", [*openhands_events()[:3], {"id": 3, "content": "?"}]))],
         "ev.json: event 3 has neither 'action' nor 'observation'"),
        ([str(write_json(tmp_path / "x.json", {"rows": []}))], "x.json: cannot tell which format this is"),
        (["swe-agent", str(write_json(tmp_path / "y.traj", {"history": []}))], "y.traj: not a SWE-agent trajectory"),
        ([str(write_jsonl(tmp_path / "torn.jsonl", ['{"messages": [', "{}"]))], "torn.jsonl:1: not valid JSON"),
        ([str(write_jsonl(tmp_path / "roles.jsonl", [{"messages": [{"role": "user", "content": "a"},
                                                                   {"role": "robot", "content": "b"}]}]))],
         "roles.jsonl:1: messages[1] has role 'robot'"),
        ([str(tmp_path / "missing.traj")], "missing.traj: no such file or folder"),
    ]
    for args, message in cases:
        run = limi("import", *args, "--out", str(out), root=tmp_path)
        assert run.returncode == 2 and message in run.stderr, (args, run.stderr)
        assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert out.read_text() == "kept\n"  # nothing written on bad input


# ------------------------------------------------------------------ curate
def test_curate_keeps_unverified_imports_out_and_verified_ones_in(tmp_path, tokenizer):
    events = openhands_events()
    rows = [{"instance_id": f"repo__{name}", "report": {"resolved": True} if name == "verified" else {},
             "history": [events[0], {**events[1], "args": {"content": request}}, *events[4:6], *events[16:]]}
            for name, request in (("verified", "Rename the parser module and update its imports everywhere."),
                                  ("unknown", "Add retries with jittered backoff to the download client."))]
    imported = tmp_path / "imported.jsonl"
    imported.write_text("".join(json.dumps(r) + "\n" for _, r in import_paths([write_jsonl(tmp_path / "oh.jsonl", rows)])))
    collected = write_jsonl(tmp_path / "trajectories" / "episodes.jsonl", [episode("cc33", "seed-greet")])
    inputs = input_files([str(collected.parent), str(imported)], tmp_path)  # curate --in DIR --in FILE
    assert [source.path for source in inputs] == [collected, imported]
    base = {"decontam": {"builtin": False, "easy": False, "humaneval": False, "agencybench_dirs": []}, "target_size": 50}
    report = curate(parse_params({"curate": base}), tmp_path, inputs, tmp_path / "sft", None, tokenizer=tokenizer)
    fate = {s["task_id"]: s for s in report["samples"]}
    assert fate["seed-greet"]["status"] == "kept" and fate["repo__verified"]["status"] == "kept"
    assert (fate["repo__unknown"]["status"], fate["repo__unknown"]["reason"]) == ("dropped", "verified")
    assert fate["repo__unknown"]["detail"] == ("imported from openhands without a verdict; its exit status finished "
                                               "is not a verdict (curate.admit_unverified admits it)")
    kept = read_trajectories(tmp_path / "sft" / "train.jsonl")
    assert [r["meta"]["task_id"] for r in kept] == ["seed-greet", "repo__verified"]
    assert kept[1]["meta"]["imported"]["verified_by"] == "report.resolved" and fate["repo__verified"]["tokens"] > 0
    admitted = curate(parse_params({"curate": {**base, "admit_unverified": True}}), tmp_path, inputs,
                      tmp_path / "sft-all", None, tokenizer=tokenizer)
    assert admitted["funnel"]["after_selection"] == 3
