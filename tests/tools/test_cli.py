"""``limi``: show renders an episode by key prefix and FILE:LINE with clear errors; export hub round-trips
through Arrow to the same tokens (and a naive Arrow load does not); sharegpt keeps roles and counts; help works."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.core.schema import read_trajectories
from pipelines.tools.export import hub_row, record_from_row, to_sharegpt

REPO = Path(__file__).resolve().parents[2]
TOOLS = [
    {"type": "function", "function": {"name": "bash", "description": "Run a command.", "parameters": {
        "type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}},
    {"type": "function", "function": {"name": "write_file", "description": "Write a file.", "parameters": {
        "type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["path", "content"]}}},
    {"type": "function", "function": {"name": "finish", "description": "Say the work is done.", "parameters": {
        "type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}}},
]


def call(turn: int, name: str, **arguments) -> dict:
    return {"id": f"call_{turn}_0", "type": "function", "function": {"name": name, "arguments": arguments}}


def episode(key: str, task: str, long_output: str = "ok") -> dict:
    """A two-round episode: tool calls with different argument keys, a tool output, a feedback round."""
    messages = [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": f"Write greet.py for {task}."},
        {"role": "assistant", "content": "Looking first.", "tool_calls": [call(0, "bash", command="ls -A")]},
        {"role": "tool", "tool_call_id": "call_0_0", "content": long_output},
        {"role": "assistant", "content": "", "tool_calls": [
            call(1, "write_file", path="greet.py", content="print('hi')\nprint('there')\n")]},
        {"role": "tool", "tool_call_id": "call_1_0", "content": "Wrote 27 bytes (2 lines) to greet.py."},
        {"role": "assistant", "content": "", "tool_calls": [call(2, "finish", summary="Wrote greet.py.")]},
        {"role": "tool", "tool_call_id": "call_2_0", "content": "Finished."},
        {"role": "user", "content": "Not done yet: greet.py must print one line."},
        {"role": "assistant", "content": "Fixing it.", "tool_calls": [
            call(3, "write_file", path="greet.py", content="print('hi there')\n")]},
        {"role": "tool", "tool_call_id": "call_3_0", "content": "Wrote 18 bytes (1 lines) to greet.py."},
        {"role": "assistant", "content": "", "tool_calls": [call(4, "finish", summary="One line now.")]},
        {"role": "tool", "tool_call_id": "call_4_0", "content": "Finished."},
    ]
    checks = [{"name": "python3 greet.py | wc -l | grep -qx 1\n# one line", "passed": True, "output": "",
               "method": "execution"},
              {"name": "the greeting is friendly", "passed": True, "output": "", "method": "judge"}]
    meta = {"episode_key": key, "task_id": task, "source": "human", "domain": "software",
            "category": "application_development", "teacher": "replay", "teacher_backend": "replay",
            "user": "simulated", "feedback": "requirements", "rounds_used": 2, "max_rounds": 3,
            "first_round": {"passed": False, "score": 0.5},
            "final": {"passed": True, "score": 1.0, "checks": checks}, "passed": True,
            "termination": "finished", "steps": 5, "tool_calls": 5}
    return {"messages": messages, "tools": TOOLS, "meta": meta}


def write_jsonl(path: Path, lines: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


def limi(*args: str, root: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``limi ARGS`` as ``python -m pipelines.tools.cli`` in ``root`` (the project it reads)."""
    full_env = {**os.environ, "LIMI_ROOT": str(root), "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "pipelines.tools.cli", *args], cwd=root, env=full_env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def project(tmp_path) -> Path:
    """A project root whose collect output holds three episodes (the middle one with a long tool output)."""
    long_output = "\n".join(f"line {i}" for i in range(200))
    write_jsonl(tmp_path / "data" / "trajectories" / "episodes.jsonl", [
        episode("aa11bb22cc33dd44", "seed-greet"), episode("ee55ff6677889900", "seed-long", long_output),
        episode("aa99000000000000", "seed-other")])
    return tmp_path


# ------------------------------------------------------------------ show
def test_show_renders_an_episode_by_key_prefix(project):
    result = limi("show", "ee55", root=project)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "episode   ee55ff6677889900   data/trajectories/episodes.jsonl:2" in out
    assert "task      seed-long" in out and "teacher   replay" in out
    assert "first round  FAIL (score 0.50)" in out and "final        PASS (score 1.00)" in out
    assert "checks       2 of 2 passed" in out
    assert "PASS  python3 greet.py | wc -l | grep -qx 1 ↵ # one line  [execution]" in out  # name on one line
    assert "[judge]" in out
    assert "── user (request)" in out and "── user (feedback, round 2)" in out
    assert "Not done yet: greet.py must print one line." in out
    assert "  → bash   [call_0_0]" in out and "      command: ls -A" in out
    assert "      path: greet.py" in out and "      | print('there')" in out  # multi-line argument as a block
    assert "── tool result: write_file [call_1_0]" in out
    assert "lines left out; --full shows them" in out and "line 199" in out and "line 100\n" not in out
    full = limi("show", "ee55", "--full", root=project)
    assert full.returncode == 0 and "line 100\n" in full.stdout and "left out" not in full.stdout


def test_show_by_file_line_and_task_id(project, tmp_path):
    other = write_jsonl(tmp_path / "elsewhere.jsonl", [episode("1234", "t-one"), episode("5678", "t-two")])
    by_line = limi("show", f"{other}:2", root=project)
    assert by_line.returncode == 0, by_line.stderr
    assert "task      t-two" in by_line.stdout and "elsewhere.jsonl:2" in by_line.stdout
    by_task = limi("show", "seed-other", root=project)
    assert by_task.returncode == 0 and "aa99000000000000" in by_task.stdout


def test_show_errors_name_the_file_and_line(project, tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [episode("k1", "t1"), "{not json", {"messages": []}])
    torn = limi("show", f"{bad}:2", root=project)
    assert torn.returncode == 2 and f"{bad}:2: not valid JSON" in torn.stderr, torn.stderr
    assert "Traceback" not in torn.stderr
    not_a_record = write_jsonl(tmp_path / "short.jsonl", [{"messages": [{"role": "user", "content": "x"}]}])
    schema = limi("show", f"{not_a_record}:1", root=project)
    assert schema.returncode == 2 and f"{not_a_record}:1: TrajectoryRecord field messages" in schema.stderr
    good = write_jsonl(tmp_path / "one.jsonl", [episode("k1", "t1")])
    past = limi("show", f"{good}:9", root=project)
    assert past.returncode == 2 and f"{good}:9: no record on this line" in past.stderr
    unknown = limi("show", "zz-no-such", root=project)
    assert unknown.returncode == 2
    assert "no episode with key or task id 'zz-no-such' in data/trajectories/episodes.jsonl" in unknown.stderr
    ambiguous = limi("show", "aa", root=project)
    assert ambiguous.returncode == 2 and "matches 2 episodes (aa11bb22cc33dd44, aa99000000000000)" in ambiguous.stderr


# ------------------------------------------------------------------ export
def records_with_varied_arguments(tmp_path) -> Path:
    """Training records whose tool calls differ in argument keys within and across rows."""
    first = episode("k1", "t1")
    second = episode("k2", "t2")
    second["messages"][2]["tool_calls"] = [call(0, "bash", command="cat notes.txt", timeout=5)]
    second["tools"] = TOOLS[:1] + TOOLS[2:]  # another tool list: different schemas per row
    third = episode("k3", "t3")
    third["messages"] = third["messages"][:8]  # one round: finish ends it
    return write_jsonl(tmp_path / "data" / "sft" / "train.jsonl", [first, second, third])


def test_export_hub_round_trips_to_the_same_tokens(tmp_path, base_model_dir):
    import pyarrow as pa
    from datasets import load_dataset
    from transformers import AutoTokenizer

    from pipelines.training.data import encode_sample

    src = records_with_varied_arguments(tmp_path)
    (src.parent / "report.json").write_text(json.dumps({
        "funnel": {"input": 5, "after_schema": 5, "dropped_schema": 0, "after_decontam": 4, "dropped_decontam": 1,
                   "after_hidden_material": 3, "dropped_hidden_material": 1, "after_selection": 3, "dropped_selection": 0},
        "eval_tasks_checked": 17, "hidden_material_checked": 42,
        "samples": [{"status": "kept", "tokens": n} for n in (100, 300, 200)]}))
    out = tmp_path / "hub"
    result = limi("export", "hub", "--out", str(out), "--license", "apache-2.0", root=tmp_path)
    assert result.returncode == 0, result.stderr
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\n")
    assert "configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-00000-of-00001.parquet" in card
    assert "| decontam | 4 | 1 |" in card and "17 evaluation tasks" in card and "42 pieces" in card
    assert "| 100 | 200 | 200 | 300 | 600 |" in card  # token lengths: min, median, mean, max, total
    assert "| application_development | 3 |" in card

    originals = read_trajectories(src)
    loaded = load_dataset("parquet", data_files=str(out / "data" / "train-00000-of-00001.parquet"),
                          cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert loaded.num_rows == 3
    calls = [c for m in loaded[1]["messages"] for c in (m["tool_calls"] or [])]
    assert all(isinstance(c["function"]["arguments"], str) for c in calls)
    back = [record_from_row(row) for row in loaded]
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    for original, round_tripped, row in zip(originals, back, loaded):
        assert round_tripped["messages"] == original["messages"] and round_tripped["tools"] == original["tools"]
        ids = encode_sample(tokenizer, original)
        assert encode_sample(tokenizer, round_tripped) == ids
        # arguments left as strings render the same text too (the template inserts strings as they are)
        as_strings = {"messages": [{k: v for k, v in m.items() if v is not None} for m in row["messages"]],
                      "tools": json.loads(row["tools"])}
        assert encode_sample(tokenizer, as_strings)["input_ids"] == ids["input_ids"]

    # Negative control: the same records through Arrow with arguments as objects gain each other's keys as
    # nulls (a struct type per column), and render different tokens even after dropping the nulls' messages.
    naive = pa.Table.from_pylist([{"messages": r["messages"], "tools": r["tools"]} for r in originals]).to_pylist()
    naive_args = naive[0]["messages"][2]["tool_calls"][0]["function"]["arguments"]
    assert naive_args == {"command": "ls -A", "path": None, "content": None, "summary": None, "timeout": None}
    naive_record = {"messages": [{k: v for k, v in m.items() if v is not None} for m in naive[0]["messages"]],
                    "tools": naive[0]["tools"]}
    assert naive_record["messages"] != originals[0]["messages"]
    assert encode_sample(tokenizer, naive_record)["input_ids"] != encode_sample(tokenizer, originals[0])["input_ids"]


def test_export_sharegpt_roles_and_counts_match_the_messages(tmp_path):
    src = records_with_varied_arguments(tmp_path)
    out = tmp_path / "lf"
    write_jsonl(out / "placeholder.jsonl", [])
    (out / "dataset_info.json").write_text(json.dumps({"alpaca_en_demo": {"file_name": "alpaca_en_demo.json"}}))
    result = limi("export", "sharegpt", "--out", str(out), "--name", "limi_demo", root=tmp_path)
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["alpaca_en_demo"] == {"file_name": "alpaca_en_demo.json"}  # an existing entry stays
    assert info["limi_demo"] == {"file_name": "limi_demo.json", "formatting": "sharegpt",
                                 "columns": {"messages": "conversations", "system": "system", "tools": "tools"}}
    rows = json.loads((out / "limi_demo.json").read_text())
    for record, row in zip(read_trajectories(src), rows):
        messages = record["messages"]
        turns = row["conversations"]
        roles = [t["from"] for t in turns]
        assert row["system"] == messages[0]["content"]
        assert roles.count("human") == sum(m["role"] == "user" for m in messages)
        assert roles.count("function_call") == sum(bool(m.get("tool_calls")) for m in messages)
        assert roles.count("gpt") == sum(m["role"] == "assistant" and not m.get("tool_calls") for m in messages)
        # every tool result an assistant turn answers is an observation; the finish results before the user's
        # feedback and at the end are not (ShareGPT alternates and ends on an assistant turn)
        finishes = sum(1 for m in messages if m["role"] == "tool" and m["content"] == "Finished.")
        assert roles.count("observation") == sum(m["role"] == "tool" for m in messages) - finishes
        assert all(r in ("human", "observation") for r in roles[0::2])
        assert all(r in ("gpt", "function_call") for r in roles[1::2]) and len(roles) % 2 == 0
        calls = [json.loads(t["value"]) for t in turns if t["from"] == "function_call"]
        assert calls == [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                         for m in messages for c in m.get("tool_calls") or []]
        assert [t["name"] for t in json.loads(row["tools"])] == [t["function"]["name"] for t in record["tools"]]
    assert "left out: 5 tool results no assistant turn answers" in result.stdout


def test_sharegpt_refuses_a_conversation_that_cannot_alternate():
    record = {"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "hi"}], "tools": []}
    from pipelines.core.errors import UserError

    with pytest.raises(UserError, match=r"f.jsonl:3: turn 1 is 'gpt' where ShareGPT needs human or observation"):
        to_sharegpt(record, "f.jsonl:3")


def test_export_jsonl_copies_and_push_needs_a_token(tmp_path):
    src = records_with_varied_arguments(tmp_path)
    result = limi("export", "jsonl", "--out", str(tmp_path / "copy"), root=tmp_path)
    assert result.returncode == 0, result.stderr
    assert read_trajectories(tmp_path / "copy" / "train.jsonl") == read_trajectories(src)
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    push = subprocess.run([sys.executable, "-m", "pipelines.tools.cli", "export", "hub", "--out", str(tmp_path / "h"),
                           "--push", "someone/limi-sft"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**env, "LIMI_ROOT": str(tmp_path), "PYTHONPATH": str(REPO)})
    assert push.returncode == 2 and "--push needs HF_TOKEN set" in push.stderr and "network" in push.stderr
    assert not (tmp_path / "h").exists()


def test_hub_row_keeps_no_hidden_meta():
    row = hub_row(episode("k", "t"))
    assert set(row) == {"messages", "tools", "task_id", "episode_key", "source", "domain", "category", "teacher"}


# ------------------------------------------------------------------ help and run
def test_help_through_the_entry_point(tmp_path):
    script = shutil.which("limi", path=str(Path(sys.executable).parent))
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '[project.scripts]' in pyproject and 'limi = "pipelines.tools.cli:main"' in pyproject
    runs = [[sys.executable, "-m", "pipelines.tools.cli"]]
    if script and "pipelines.tools.cli" in Path(script).read_text(errors="replace"):
        runs.append([script])  # the installed console script, when this environment has it
    for cmd in runs:
        for args in (["--help"], ["run", "--help"], ["show", "--help"], ["export", "--help"], ["import", "--help"],
                     ["ui", "--help"]):
            result = subprocess.run([*cmd, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                                    env={**os.environ, "PYTHONPATH": str(REPO)})
            assert result.returncode == 0, (args, result.stderr)
            assert result.stdout.startswith("usage: limi")
    top = subprocess.run([*runs[0], "--help"], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert all(word in top.stdout for word in ("run", "show", "export", "import", "ui"))


def test_run_names_an_unknown_stage(tmp_path):
    result = limi("run", "no_such_stage", root=REPO)
    assert result.returncode == 2
    assert "unknown stage(s) 'no_such_stage'; dvc.yaml defines: base_model" in result.stderr


def test_run_passes_the_stage_exit_status_through(tmp_path):
    from tests.conftest import make_project

    root = make_project(tmp_path / "project")
    shutil.copytree(REPO / "pipelines", root / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    params = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(params.replace("\n  dtype: float32", "\n  dtype: int8", 1))
    assert "dtype: int8" in (root / "params.yaml").read_text()
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "init", "-q"], cwd=root, check=True)
    result = limi("run", "--single-item", "base_model", root=root)
    assert result.returncode == 2, result.stdout + result.stderr  # the stage's own status for bad params
    assert "base_model.dtype" in result.stdout + result.stderr
    assert "error: stage base_model failed: failed to run: python -m pipelines.base_model" in result.stderr
