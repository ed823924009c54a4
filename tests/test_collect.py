"""The collect stage end to end: records, resume after SIGKILL, report, dataset loading."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipelines.core.schema import read_trajectories
from tests.conftest import REPO, make_project

pytestmark = pytest.mark.needs_bwrap


def write_queries(root: Path, n: int, *, slow: bool = False) -> Path:
    lines = []
    for i in range(n):
        sol = root / "solutions" / f"q{i}"
        sol.mkdir(parents=True, exist_ok=True)
        (sol / "value.py").write_text(f"VALUE = {i}\n")
        checks = [f"python3 -c 'import value; assert value.VALUE == {i}'"]
        if slow:
            checks.append("sleep 0.3")
        lines.append(json.dumps({
            "id": f"q{i}", "source": "human", "domain": "software", "category": "algorithm",
            "query": f"Set VALUE in value.py to {i}.",
            "workspace": {"files": {"value.py": "VALUE = None\n", "README": "tiny task\n"}},
            "verifier": {"kind": "tests", "commands": checks},
            "provenance": {"solution_dir": f"solutions/q{i}"}}))
    path = root / "queries.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def project(tmp_path: Path, n: int, **collect) -> Path:
    root = make_project(tmp_path / "proj")
    write_queries(root, n, slow=collect.pop("slow", False))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["collect"].update({"seeds": False, "drills": False, "query_files": ["queries.jsonl"], "parallel": 2,
                              "teachers": [{"model": "replay", "sources": ["human"]}], **collect})
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def run_collect(root: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    from tests.conftest import run_module

    return run_module("pipelines.collect", *args, root=root, **kw)


def test_collect_writes_valid_records_and_report(tmp_path):
    root = project(tmp_path, 3)
    result = run_collect(root)
    assert result.returncode == 0, result.stderr[-2000:]
    records = read_trajectories(root / "data/trajectories/episodes.jsonl")
    assert len(records) == 3 and all(r["meta"]["passed"] for r in records)
    meta = records[0]["meta"]
    assert meta["teacher"] == "replay" and meta["termination"] == "finished" and meta["sandbox"]["kind"] == "bwrap"
    assert "+VALUE =" in meta["final_diff"] and meta["first_round"]["passed"]
    tool_msg = next(m for m in records[0]["messages"] if m["role"] == "tool")
    assert tool_msg["tool_call_id"].startswith("call_")
    call = next(m for m in records[0]["messages"] if m.get("tool_calls"))["tool_calls"][0]
    assert isinstance(call["function"]["arguments"], dict)
    report = json.loads((root / "data/trajectories/report.json").read_text())
    assert report["episodes"] == 3 and report["passed"] == 3 and report["by_teacher"] == {"replay": 3}
    # outputs are functions of the inputs: plan order, no timings or dates; those go to the run's report
    assert [r["meta"]["task_id"] for r in records] == ["q0", "q1", "q2"]
    assert not {"timings", "collected_at"} & set(meta) and "seconds" not in json.dumps(report)
    timings = json.loads((root / "reports/runs/collect.json").read_text())
    assert sorted(e["episode_key"] for e in timings["episodes"]) == sorted(r["meta"]["episode_key"] for r in records)

    from datasets import load_dataset

    ds = load_dataset("json", data_files=str(root / "data/trajectories/episodes.jsonl"), split="train")
    assert len(ds) == 3 and set(ds.column_names) == {"messages", "tools", "meta"}

    again = run_collect(root)  # resume: nothing left to run
    assert "0 to run" in again.stderr
    assert len(read_trajectories(root / "data/trajectories/episodes.jsonl")) == 3


def test_changed_query_reruns_and_vanished_query_is_dropped(tmp_path):
    root = project(tmp_path, 3)
    assert run_collect(root).returncode == 0
    lines = (root / "queries.jsonl").read_text().splitlines()
    changed = json.loads(lines[1])
    changed["query"] += " Please."
    (root / "queries.jsonl").write_text("\n".join([lines[0], json.dumps(changed)]) + "\n")
    result = run_collect(root)
    assert result.returncode == 0 and "1 to run" in result.stderr
    records = read_trajectories(root / "data/trajectories/episodes.jsonl")
    assert sorted(r["meta"]["task_id"] for r in records) == ["q0", "q1"]
    assert next(r for r in records if r["meta"]["task_id"] == "q1")["meta"]["query"].endswith("Please.")


def test_sigkill_mid_run_loses_and_duplicates_nothing(tmp_path):
    root = project(tmp_path, 14, slow=True)
    episodes = root / "data/trajectories/episodes.jsonl"
    env = {"LIMI_ROOT": str(root), "PYTHONPATH": str(REPO)}
    import os

    proc = subprocess.Popen([sys.executable, "-m", "pipelines.collect"], cwd=root, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if episodes.exists() and episodes.read_text().count("\n") >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = episodes.read_text().count("\n")
    assert 3 <= done_before < 14, "the kill should land mid-run"
    result = run_collect(root)
    assert result.returncode == 0, result.stderr[-2000:]
    records = read_trajectories(episodes)
    ids = [r["meta"]["task_id"] for r in records]
    assert sorted(ids) == sorted(f"q{i}" for i in range(14)) and len(set(ids)) == 14
    report = json.loads((root / "data/trajectories/report.json").read_text())
    assert report["episodes"] == 14 == sum(report["outcome"].values()) == sum(report["by_teacher"].values())


def test_local_backend_episode_records_validate(tmp_path, tiny_model_dir):
    root = project(tmp_path, 1, teachers=[{"model": "tiny", "sources": ["human"]}],
                   limits={"max_steps": 2, "max_tokens": 20000, "max_seconds": 120, "max_format_errors": 2},
                   sampling={"max_tokens": 12, "temperature": 0.0, "top_p": 1.0, "seed": 0})
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["llm"]["models"]["tiny"] = {"backend": "local", "path": str(tiny_model_dir)}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_collect(root)
    assert result.returncode == 0, result.stderr[-2000:]
    (record,) = read_trajectories(root / "data/trajectories/episodes.jsonl")
    assert record["meta"]["teacher_backend"] == "local" and not record["meta"]["passed"]
    assert record["meta"]["termination"] in ("step_limit", "format_errors", "finished")
    assert record["meta"]["tokens"]["prompt"] > 0


def test_missing_bwrap_refuses_with_install_command(tmp_path):
    root = project(tmp_path, 1)
    result = run_collect(root, env={"PATH": "/nonexistent"})
    assert result.returncode != 0
    assert "apt-get install bubblewrap" in result.stderr or "bubblewrap" in result.stderr


def test_two_runs_in_two_projects_write_the_same_bytes(tmp_path):
    # what differs between the runs: the project's path, the episodes' finishing order (4 at once), the time
    roots = [project(tmp_path / name, 4, parallel=4, rounds=1) for name in ("a", "b")]
    for root in roots:
        result = run_collect(root)
        assert result.returncode == 0, result.stderr[-2000:]
    first, second = (r / "data/trajectories/episodes.jsonl" for r in roots)
    assert first.read_bytes() == second.read_bytes()
    text = first.read_text()
    assert str(roots[0]) not in text and str(tmp_path) not in text
    ids = [c["id"] for r in read_trajectories(first) for m in r["messages"] for c in (m.get("tool_calls") or [])]
    assert ids and all(i.startswith("call_") for i in ids)


def test_each_episode_is_an_mlflow_trace_and_the_records_do_not_change(tmp_path):
    """Traces go to the project's MLflow store next to the collect run; the records are the same bytes as a
    run with tracing switched off; no secret value from the environment reaches a trace."""
    from mlflow import MlflowClient

    from tests.agent.test_traces import MARKERS

    traced, plain = project(tmp_path / "traced", 2), project(tmp_path / "plain", 2)
    result = run_collect(traced, env={**MARKERS, "DVC_EXP_NAME": "trace-exp"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert run_collect(plain, env={"LIMI_TRACES": "0"}).returncode == 0
    episodes = traced / "data/trajectories/episodes.jsonl"
    assert episodes.read_bytes() == (plain / "data/trajectories/episodes.jsonl").read_bytes()

    client = MlflowClient(tracking_uri=f"sqlite:///{traced / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("limi-pipeline").experiment_id
    (run,) = client.search_runs([experiment], "tags.stage = 'collect'")
    traces = client.search_traces(locations=[experiment], run_id=run.info.run_id)
    records = {r["meta"]["task_id"]: r for r in read_trajectories(episodes)}
    assert sorted(t.info.tags["limi.task_id"] for t in traces) == sorted(records) == ["q0", "q1"]
    for trace in traces:
        tags = trace.info.tags
        assert tags["limi.stage"] == "collect" and tags["limi.teacher"] == "replay"
        assert tags["limi.run_id"] == run.info.run_id and tags["dvc.experiment"] == "trace-exp"
        record = records[tags["limi.task_id"]]
        assert tags["limi.episode_key"] == record["meta"]["episode_key"]
        kinds = [s.span_type for s in trace.data.spans]
        assert kinds.count("CHAT_MODEL") == sum(m["role"] == "assistant" for m in record["messages"])
        assert kinds.count("TOOL") == sum(m["role"] == "tool" for m in record["messages"])
        assert kinds.count("EVALUATOR") == record["meta"]["rounds_used"]
        verdicts = {a.name: a.value for a in trace.info.assessments}
        assert verdicts["passed"] is True
        assert {c["name"] for c in record["meta"]["final"]["checks"]} <= set(verdicts)
        text = trace.to_json()
        assert not [v for v in MARKERS.values() if v in text]
    # tracing off: the run is there, its traces are not
    client = MlflowClient(tracking_uri=f"sqlite:///{plain / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("limi-pipeline").experiment_id
    assert client.search_runs([experiment]) and not client.search_traces(locations=[experiment])
