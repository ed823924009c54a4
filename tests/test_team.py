"""The team setup for real: Prefect server and MLflow server on a private PostgreSQL, MLflow artifacts on an
S3-compatible server, a process worker in a process of its own running a deployment from prefect.yaml.

The servers start once per session (tests/stack.py); the toy project is test_flows' a -> b -> c plus a
``report`` stage that logs an artifact.
"""

from __future__ import annotations

import json

import pytest

from tests.stack import dump_logs


@pytest.mark.slow  # PostgreSQL, Prefect and MLflow servers and a worker: over a minute on 2 cores
def test_a_deployment_runs_on_the_team_setup_and_its_record_lands_in_postgres_and_s3(team):
    from mlflow import MlflowClient

    try:
        out = team.prefect("deployment", "run", "limi-pipeline/full", "--watch", "--watch-interval", "1",
                           timeout=240)
        assert "Completed" in out, out
        assert (team.project / "report.txt").read_text() == "ABC"
    except BaseException:
        dump_logs(team.logs)
        raise

    client = MlflowClient(team.mlflow_url)
    experiment = client.get_experiment_by_name("limi-pipeline")
    [parent] = client.search_runs([experiment.experiment_id], "attributes.run_name = 'pipeline'")
    assert parent.info.status == "FINISHED"
    assert {parent.data.tags[f"stage.{s}"] for s in ("a", "b", "c", "report")} == {"ran"}
    flow_run_id = parent.data.tags["prefect.flow_run_id"]
    kids = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(k.info.run_name for k in kids) == ["c", "report"]  # a and b are untracked toy stages
    [report] = [k for k in kids if k.info.run_name == "report"]

    # the record is in PostgreSQL: MLflow's runs and Prefect's flow run
    rows = team.pg.query("mlflow", "SELECT name, status, artifact_uri FROM runs WHERE run_uuid = %s",
                         (report.info.run_id,))
    assert rows == [("report", "FINISHED", report.info.artifact_uri)]
    assert report.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied: clients need no S3 credentials
    assert team.pg.query("prefect", "SELECT state_type::text FROM flow_run WHERE id = %s", (flow_run_id,)) == \
        [("COMPLETED",)]

    # the artifact is in the bucket, under MLflow's prefix, and reads back through the server
    key = f"{team.artifacts}/{experiment.experiment_id}/{report.info.run_id}/artifacts/report.json"
    assert key in team.s3.keys(f"{team.artifacts}/")
    body = team.s3.client().get_object(Bucket=team.s3.bucket, Key=key)["Body"].read()
    assert json.loads(body) == {"chars": 3, "text": "abc"}
    assert [a.path for a in client.list_artifacts(report.info.run_id)] == ["report.json"]

    # no secret reached a log, MLflow's params and tags, or the project's files
    logged = [log.read_text(errors="replace") for log in team.logs.glob("*.log")]
    recorded = [v for (v,) in team.pg.query("mlflow", "SELECT value FROM params UNION ALL SELECT value FROM tags")]
    tracked = [p.read_text(errors="replace") for p in team.project.rglob("*") if p.is_file() and ".git" not in p.parts]
    for secret in team.secrets():
        assert not any(secret in text for text in logged + recorded + tracked)
