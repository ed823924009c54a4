"""Faults: a misbehaving teacher endpoint, a failing judge, SIGKILL in collect, curate and SFT, a full
disk under the trajectories, an unreachable tracking server. Each must be survived: the work finishes
(retried, or recorded as an infrastructure error) or stops with a clear message and resumes losing
and duplicating nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipelines.agent.loop import Limits, run_episode
from pipelines.agent.sandbox.bwrap import BwrapSandbox
from pipelines.agent.tools import Toolbox
from pipelines.agent.users import SimulatedUser
from pipelines.agent.verifiers import make_verifier
from pipelines.collect import collect
from pipelines.collection.plan import load_all_queries, plan_jobs
from pipelines.collection.writer import EPISODES_FILE
from pipelines.core.errors import UserError
from pipelines.llm.openai_backend import OpenAIModel
from pipelines.core.params import load_params
from pipelines.core.schema import VerifierSpec, read_trajectories
from tests.conftest import REPO, make_project, run_module
from tests.reliability.figures import FIGURES
from tests.reliability.helpers import FaultyEndpoint, completion, count_records
from tests.test_collect import project as replay_project
from tests.test_sft import sample as sft_sample

pytestmark = pytest.mark.needs_bwrap
fault = pytest.mark.figure("faults")
KILL_HOOK = Path(__file__).parent / "killhook"
KEY = "sk-faults-0123456789"


def planned_keys(root: Path) -> set[str]:
    params = load_params(root / "params.yaml")
    return {job.key for job in plan_jobs(load_all_queries(params.collect, root), params)}


def set_params(root: Path, update) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    update(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params))


# --------------------------------------------------------------------- the teacher endpoint
SOLVE = [("ok", completion("", [("bash", {"command": "echo done > done.txt"})])),
         ("ok", completion("", [("finish", {"summary": "wrote done.txt"})]))]


@pytest.mark.parametrize("first", [("status", 429), ("status", 500), ("status", 503), ("malformed",), ("truncated",),
                                   ("hang", 2.5)], ids=lambda s: f"{s[0]}{s[1] if len(s) > 1 else ''}")
@fault
def test_teacher_fault_is_retried_and_the_episode_completes(first, tmp_path, monkeypatch):
    monkeypatch.setenv("LIMI_FAULT_KEY", KEY)
    endpoint = FaultyEndpoint([first, *SOLVE])
    try:
        teacher = OpenAIModel("m", name="teacher", base_url=endpoint.url, api_key_env="LIMI_FAULT_KEY", timeout_s=1.0,
                              max_retries=2, backoff_s=0.01)
        workspace = tmp_path / "ws"
        box = BwrapSandbox(workspace, timeout_s=5)
        verifier = make_verifier(VerifierSpec(kind="tests", commands=["test -f done.txt"]), box)
        result = run_episode("write done.txt", teacher, Toolbox(workspace, box), verifier, SimulatedUser(),
                             Limits(max_steps=4, max_rounds=1))
    finally:
        endpoint.close()
    assert result.termination == "finished" and result.passed, (result.termination, result.error)
    assert len(endpoint.requests) == 3 and result.usage.attempts >= 1


def _collect_in_process(root: Path, out: Path, **kw) -> dict:
    return collect(load_params(root / "params.yaml"), root, out, **kw)


@fault
def test_teacher_down_for_good_is_recorded_as_infra_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LIMI_FAULT_KEY", KEY)
    endpoint = FaultyEndpoint(default=("status", 500))
    root = replay_project(tmp_path, 3)
    set_params(root, lambda p: (p["llm"]["models"].update(remote={
        "backend": "openai", "model": "m", "base_url": endpoint.url, "api_key_env": "LIMI_FAULT_KEY", "timeout_s": 1,
        "max_retries": 1, "backoff_s": 0.01}), p["collect"].update(teachers=[{"model": "remote", "sources": ["human"]}])))
    try:
        report = _collect_in_process(root, root / "data/trajectories", parallel=2)
    finally:
        endpoint.close()
    records = read_trajectories(root / "data/trajectories" / EPISODES_FILE)
    assert report["outcome"] == {"infra_error": 3} and len(records) == 3
    assert all("no answer after 2 attempts" in r["meta"]["error"] for r in records)
    assert count_records(root / "data/trajectories" / EPISODES_FILE, planned_keys(root)) == (0, 0)


@fault
def test_judge_failure_is_an_infra_error_not_a_verdict(tmp_path, monkeypatch):
    monkeypatch.setenv("LIMI_FAULT_KEY", KEY)
    endpoint = FaultyEndpoint(default=("status", 500))
    root = make_project(tmp_path / "proj")
    (root / "queries.jsonl").write_text(json.dumps({
        "id": "r1", "source": "human", "domain": "research", "category": "research",
        "query": "Summarise the notes in notes.md into summary.md.",
        "workspace": {"files": {"notes.md": "a\nb\n"}},
        "verifier": {"kind": "rubric", "criteria": ["summary.md exists and covers a and b"]}}) + "\n")
    script = root / "teacher.jsonl"
    script.write_text(json.dumps({"tool_calls": [{"id": "c1", "function": {"name": "finish", "arguments": {
        "summary": "done"}}}]}) + "\n")
    set_params(root, lambda p: (
        p["llm"]["models"].update(judge={"backend": "openai", "model": "m", "base_url": endpoint.url,
                                         "api_key_env": "LIMI_FAULT_KEY", "timeout_s": 1, "max_retries": 1,
                                         "backoff_s": 0.01},
                                  script={"backend": "scripted", "script": str(script)}),
        p["llm"]["roles"].update(judge="judge"),
        p["collect"].update(seeds=False, drills=False, query_files=["queries.jsonl"], rounds=1,
                            teachers=[{"model": "script", "sources": ["human"]}])))
    try:
        report = _collect_in_process(root, root / "data/trajectories", parallel=1)
    finally:
        endpoint.close()
    (record,) = read_trajectories(root / "data/trajectories" / EPISODES_FILE)
    assert record["meta"]["termination"] == "infra_error" and not record["meta"]["passed"]
    assert "judge failed" in record["meta"]["error"] and report["outcome"] == {"infra_error": 1}


# --------------------------------------------------------------------- SIGKILL
def _killed_run(module: str, root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    hook = {"PYTHONPATH": f"{KILL_HOOK}{os.pathsep}{REPO}", **env}
    return run_module(module, *args, root=root, env=hook, timeout=300)


@fault
def test_sigkill_mid_write_in_collect_loses_and_duplicates_nothing(tmp_path, mlflow_uri):
    root = replay_project(tmp_path, 6, parallel=1)
    episodes = root / "data/trajectories" / EPISODES_FILE
    env = {"MLFLOW_TRACKING_URI": mlflow_uri}
    killed = _killed_run("pipelines.collect", root, {**env, "LIMI_KILL_WRITE": f"{EPISODES_FILE}:4"})
    assert killed.returncode == -signal.SIGKILL
    lines = episodes.read_text().split("\n")
    assert len(lines) == 4 and lines[-1] and not lines[-1].endswith("}")  # three records and a torn fourth
    rerun = run_module("pipelines.collect", root=root, env=env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "1 torn" in rerun.stderr and "3 already done, 3 to run" in rerun.stderr
    assert count_records(episodes, planned_keys(root)) == (0, 0)
    assert len(read_trajectories(episodes)) == 6


def _trajectory(i: int) -> dict:
    record = sft_sample(i, words=20)
    record["meta"] = {"task_id": f"t{i}", "passed": True, "domain": "software", "category": "algorithm",
                      "teacher": "replay", "rounds_used": 1, "final": {"passed": True, "score": 1.0},
                      "query": record["messages"][1]["content"], "final_diff": f"+VALUE = {i}\n"}
    return record


@fault
def test_sigkill_during_curates_write_leaves_no_partial_output(tmp_path, tiny_model_dir, mlflow_uri):
    root = make_project(tmp_path / "proj")
    set_params(root, lambda p: (p["llm"]["models"].update(tiny={"backend": "local", "path": str(tiny_model_dir)}),
                                p["llm"]["roles"].update(student="tiny"),
                                p["curate"]["decontam"].update(humaneval=False, agencybench_dirs=[])))
    traj = root / "data" / "trajectories"
    traj.mkdir(parents=True)
    (traj / EPISODES_FILE).write_text("".join(json.dumps(_trajectory(i)) + "\n" for i in range(5)))
    out = root / "data" / "sft"
    env = {"MLFLOW_TRACKING_URI": mlflow_uri}
    killed = _killed_run("pipelines.curate", root, {**env, "LIMI_KILL_REPLACE": "train.jsonl"})
    assert killed.returncode == -signal.SIGKILL
    assert not (out / "train.jsonl").exists()  # the finished temp file never got the real name
    rerun = run_module("pipelines.curate", root=root, env=env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "train.jsonl"]  # the killed run's temp is gone
    assert len(read_trajectories(out / "train.jsonl")) == 5


@fault
def test_sigkill_during_sft_resumes_and_never_leaves_a_partial_model(tmp_path, tiny_model_dir):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "params.yaml").write_text("sft: {method: lora, lora: {r: 4, alpha: 8}, max_steps: 6, save_steps: 2, "
                                      "batch_size: 1, learning_rate: 1.0e-3, warmup_ratio: 0.0}\n")
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps(sft_sample(i, words=100)) + "\n" for i in range(3)))
    out, checkpoints = root / "sft", root / ".sft.checkpoints"
    cmd = [sys.executable, "-m", "pipelines.sft", "--data", str(data), "--base", str(tiny_model_dir), "--out", str(out)]
    env = {**os.environ, "LIMI_ROOT": str(root), "PYTHONPATH": str(REPO), "CI": "1"}
    proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (checkpoints / "checkpoint-2" / "trainer_state.json").exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not out.exists() and not (out / "metrics.json").exists()  # nothing there claims to be a model
    resumed = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from"] and metrics["steps"] == 6
    assert (out / "adapter_model.safetensors").exists() and not checkpoints.exists()
    assert [p.name for p in root.iterdir() if p.name.endswith(".tmp")] == []


# --------------------------------------------------------------------- disk full
@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (we are root), or a skip where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@fault
def test_disk_full_while_writing_a_trajectory(tmp_path, small_disk):
    root = replay_project(tmp_path, 6, parallel=1)
    scratch = tmp_path / "scratch"
    _collect_in_process(root, scratch, limit=1)
    size = len((scratch / EPISODES_FILE).read_bytes())
    out = small_disk / "trajectories"
    out.mkdir()
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"\0" * (free - (size * 3 // 2 // 4096 + 1) * 4096))  # room for 1.5 records, page-rounded
    with pytest.raises(UserError) as info:
        _collect_in_process(root, out)
    message = str(info.value)
    assert "No space left on device" in message and "rerun to resume" in message and EPISODES_FILE in message
    lines = (out / EPISODES_FILE).read_text().split("\n")
    assert lines[-1] == "" and len(lines) >= 2 and all(json.loads(line) for line in lines[:-1])  # whole lines only
    filler.unlink()  # room again: the rerun picks up where the full disk stopped it
    report = _collect_in_process(root, out)
    assert report["episodes"] == 6
    assert count_records(out / EPISODES_FILE, planned_keys(root)) == (0, 0)


# --------------------------------------------------------------------- tracking server unreachable
@fault
def test_unreachable_tracking_server_warns_and_the_stage_finishes(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = replay_project(tmp_path, 2)
    env = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
           "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}
    result = run_module("pipelines.collect", root=root, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "MLflow tracking at" in result.stderr and "runs without a record" in result.stderr
    assert len(read_trajectories(root / "data/trajectories" / EPISODES_FILE)) == 2
    assert json.loads((root / "data/trajectories/report.json").read_text())["episodes"] == 2


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    """One SQLite tracking store for the stage runs here: its schema is created once."""
    return f"sqlite:///{tmp_path_factory.mktemp('rel-mlflow') / 'mlflow.db'}"
