"""Collect and eval episodes through the ``openai`` backend against a real OpenAI-compatible server on loopback
serving the embedded model, tool calls included.

Why ``transformers serve``: it comes from the package registry with what the project already pins
(``transformers[serving]``: FastAPI and uvicorn, both already in the lock), loads ``models/base`` as the
base_model stage wrote it (safetensors, the project's chat template), runs on CPU, and answers real HTTP in
the OpenAI chat-completions schema (tools in the request, usage, finish reasons). llama-cpp-python is not
among the pinned packages, compiles a C++ extension when installed, and serves GGUF files only: the embedded
package's GGUF with that file's own chat template, not the ``models/base`` every other backend loads.

The server has no tool-call parser for a Llama-family model: it returns the model's ``<tool_call>`` markup as
text, and the backend parses it with the ``hermes`` parser (``pipelines.llm.toolcalls``), as vLLM without
``--tool-call-parser`` would make it do. The 135M model does not call tools on its own (its collect and eval
episodes in ``make repro`` have none), but greedy it repeats a tool call it is shown: the task asks it to.

The tiny random model of ``tests/conftest.py`` answers an episode's turn in a quarter of a second instead of
5 to 12, but it never writes a tool call, so it cannot show the parsing; the embedded model is used. Marked
slow: on a busy 2-core machine the server's start and the two episodes took 30 to 50 s (a turn is a
1000-token prompt, mostly the tool schemas, and about 60 generated tokens), plus the embedded model's
conversion when no other test of the session has done it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from pipelines.collect import collect
from pipelines.collection.writer import EPISODES_FILE
from pipelines.core.params import load_params
from pipelines.core.schema import VerifierSpec, read_trajectories
from pipelines.eval import EvalOutputs, run_eval
from pipelines.evaluation.models import build_models
from pipelines.evaluation.suites.common import EvalTask, Subtask
from tests.conftest import make_project

pytestmark = [pytest.mark.needs_bwrap, pytest.mark.slow]

CALLS = ('<tool_call>\n{"name": "write_file", "arguments": {"path": "done.txt", "content": "hello"}}\n</tool_call>\n'
         '<tool_call>\n{"name": "finish", "arguments": {"summary": "done"}}\n</tool_call>')
QUERY = "Repeat this text exactly:\n\n" + CALLS
CHECK = "grep -qx hello done.txt"
KEY = "sk-served-test-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(base_model_dir, tmp_path_factory):
    """``transformers serve models/base`` on a free loopback port, up when /health answers."""
    cli = Path(sys.executable).with_name("transformers")
    assert cli.exists(), f"{cli} missing: install the test extra (transformers[serving])"
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    # one thread: on a 2-core machine whose other core runs the sandboxed commands, two OpenMP threads spin
    # against each other and a turn takes several times longer; the hub is never asked (the model is a folder)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(cli), "serve", str(base_model_dir), "--host", "127.0.0.1", "--port", str(port),
                                 "--device", "cpu", "--dtype", "float32"],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as answer:
                    if json.loads(answer.read()).get("status") == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() - started > 120:
                pytest.fail(f"transformers serve not up after 120 s: {log_path.read_text()[-2000:]}")
            time.sleep(0.25)
        yield {"url": f"{base}/v1", "model": str(base_model_dir), "log": log_path}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def served_project(tmp_path: Path, server: dict) -> Path:
    """A project whose teacher and model under test are the served model, through the openai backend."""
    root = make_project(tmp_path / "proj")
    (root / "queries.jsonl").write_text(json.dumps({
        "id": "repeat-call", "source": "human", "domain": "software", "category": "algorithm", "query": QUERY,
        "verifier": {"kind": "tests", "commands": [CHECK]}}) + "\n")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["llm"]["models"]["served"] = {"backend": "openai", "model": server["model"], "base_url": server["url"],
                                         "api_key_env": "LIMI_SERVED_KEY", "timeout_s": 120, "max_retries": 0}
    harness = {"rounds": 1, "parallel": 1, "limits": {"max_steps": 2}, "sampling": {"max_tokens": 72}}
    params["collect"].update(seeds=False, drills=False, query_files=["queries.jsonl"],
                             teachers=[{"model": "served", "sources": ["human"]}], **harness)
    params["eval"].update(models=[{"name": "base", "model": "served"}], k=1,
                          suites=[{"name": "builtin", "limit": 3}, {"name": "humaneval", "limit": 2}], **harness)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def assert_parsed_calls(record: dict) -> None:
    turn = record["messages"][2]
    assert turn["role"] == "assistant" and turn["content"] == ""
    assert [c["function"] for c in turn["tool_calls"]] == [
        {"name": "write_file", "arguments": {"path": "done.txt", "content": "hello"}},
        {"name": "finish", "arguments": {"summary": "done"}}]
    assert [m["role"] for m in record["messages"][3:]] == ["tool", "tool"]
    assert KEY not in json.dumps(record)


def test_collect_and_eval_through_transformers_serve(tmp_path, server, monkeypatch):
    monkeypatch.setenv("LIMI_SERVED_KEY", KEY)
    root = served_project(tmp_path, server)
    params = load_params(root / "params.yaml")

    report = collect(params, root, root / "data/trajectories")
    (record,) = read_trajectories(root / "data/trajectories" / EPISODES_FILE)
    meta = record["meta"]
    assert report["outcome"] == {"passed": 1}, meta.get("error")
    assert meta["termination"] == "finished"
    assert meta["teacher"] == "served" and meta["teacher_backend"] == "openai" and meta["passed"]
    assert meta["tool_calls"] == 2 and meta["invalid_tool_calls"] == 0 and meta["format_errors"] == 0
    assert meta["tokens"]["prompt"] > 500 and 0 < meta["tokens"]["completion"] <= 72  # the server's usage
    assert_parsed_calls(record)

    task = EvalTask(id="repeat-call", suite="builtin", domain="software", category="algorithm",
                    subtasks=[Subtask(QUERY, VerifierSpec(kind="tests", commands=[CHECK]))])
    result = run_eval(params, root, models=build_models(params, root), tasks=[task])
    (trial,) = read_trajectories(EvalOutputs.under(root).episodes_dir / EPISODES_FILE)
    assert trial["meta"]["model"] == "base" and trial["meta"]["passed"]
    assert trial["meta"]["model_info"] == {"model": "served", "backend": "openai", "weights": server["model"]}
    assert result["headline"]["base"]["sr_at_r"] == 100 and result["headline"]["base"]["tool_call_validity"] == 100
    assert_parsed_calls(trial)
    assert "Traceback" not in server["log"].read_text()
