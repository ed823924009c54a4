"""stage_run against a real MLflow SQLite store (and an unreachable server)."""

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from pipelines.core.tracking import stage_run
from tests.conftest import REPO, make_project

SECRET = "tok-marker-9f8e7d6c5b"


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = make_project(tmp_path / "proj")
    monkeypatch.setenv("LIMI_ROOT", str(root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LIMI_PARENT_RUN_ID", raising=False)
    monkeypatch.setenv("GITHUB_TOKEN", SECRET)
    (root / "models" / "base").mkdir(parents=True)
    (root / "models" / "base" / "w.bin").write_bytes(b"weights")
    (root / "pipelines").mkdir()
    (root / "pipelines" / "base_model.py").write_text("# stage script\n")
    return root


def runs(root: Path):
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    return mlflow.search_runs(search_all_experiments=True, output_format="list")


def test_finished_run_with_identity_tags(project):
    with stage_run("base_model", {"source": "embedded", "note": f"uses {SECRET}"}) as run:
        run.log_metrics({"x": 1.0})
    (r,) = runs(project)
    assert r.info.status == "FINISHED"
    tags = r.data.tags
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
    assert tags["git.commit"] == head and tags["git.dirty"] == "false"
    assert len(tags["params_hash"]) == 16
    assert tags["dvc.out.models/base"].endswith(".dir")
    assert tags["dvc.dep.pipelines/base_model.py"]
    assert r.data.params["source"] == "embedded" and SECRET not in r.data.params["note"]
    assert r.data.metrics["x"] == 1.0
    assert (project / "mlflow.db").exists() and not (Path.cwd() / "mlruns").exists()


def test_raising_stage_leaves_failed_run(project):
    with pytest.raises(RuntimeError):
        with stage_run("base_model", {}):
            raise RuntimeError("boom")
    (r,) = runs(project)
    assert r.info.status == "FAILED"


def test_parent_run_from_another_process(project):
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    from pipelines.core.tracking import ensure_experiment

    with mlflow.start_run(experiment_id=ensure_experiment(), run_name="pipeline") as parent:
        parent_id = parent.info.run_id
    code = "from pipelines.core.tracking import stage_run\nwith stage_run('base_model', {'a': 1}): pass\n"
    env = {**os.environ, "LIMI_PARENT_RUN_ID": parent_id, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], cwd=project, env=env, check=True)
    child = [r for r in runs(project) if r.info.run_id != parent_id][0]
    assert child.data.tags["mlflow.parentRunId"] == parent_id and child.info.status == "FINISHED"


def test_unreachable_server_does_not_stop_the_stage(project, monkeypatch, caplog):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    did_work = []
    with stage_run("base_model", {}) as run:
        did_work.append(True)
        run.log_metrics({"x": 1})
    assert did_work == [True] and not run.active
    assert "tracking" in caplog.text and "unavailable" in caplog.text
