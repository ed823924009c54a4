"""Sharing through S3: a DVC remote and MLflow's artifact store on a local S3-compatible server (moto's, on
loopback; tests/stack.py). Endpoint, bucket and prefix are configuration; credentials come only from the
environment and never reach a file DVC or git keeps.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.stack import BIN, clean_env

GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
# the stage counts its runs in a file nobody tracks: a second machine that pulls must not run it again
STAGE = {"cmd": "python -c \"import pathlib; pathlib.Path('out.txt').write_text(pathlib.Path('data.txt').read_text()"
                ".upper()); open('runs.log', 'a').write('ran')\"",
         "deps": ["data.txt"], "outs": ["out.txt"]}


def dvc(root: Path, *args: str, env: dict) -> str:
    result = subprocess.run([str(BIN / "dvc"), *args], cwd=root, env=env, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, f"dvc {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_dvc_push_then_pull_and_repro_pull_on_a_second_machine(s3_store, tmp_path):
    import yaml

    env = clean_env(**{k: v for k, v in s3_store.env.items() if k.startswith("AWS_")})
    first = tmp_path / "first"
    first.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=first, check=True)
    dvc(first, "init", "-q", env=env)
    (first / "raw.bin").write_bytes(bytes(range(256)) * 64)
    (first / "data.txt").write_text("shared data\n")
    (first / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"upper": STAGE}}))
    dvc(first, "add", "-q", "raw.bin", env=env)
    dvc(first, "repro", env=env)
    with (first / ".gitignore").open("a") as ignore:
        ignore.write("/runs.log\n")
    dvc(first, "remote", "add", "-d", "storage", f"s3://{s3_store.bucket}/dvc/team", env=env)
    dvc(first, "remote", "modify", "storage", "endpointurl", s3_store.endpoint, env=env)
    subprocess.run([*GIT, "add", "-A"], cwd=first, check=True)
    subprocess.run([*GIT, "commit", "-qm", "data, stage and remote"], cwd=first, check=True)
    dvc(first, "push", env=env)
    pushed = s3_store.keys("dvc/team/")
    assert len(pushed) == 2 and all(k.startswith("dvc/team/files/md5/") for k in pushed)  # raw.bin, out.txt

    # a second machine: a clone with an empty cache; the credentials again only from its environment
    second = tmp_path / "second"
    subprocess.run(["git", "clone", "-q", str(first), str(second)], check=True)
    assert not (second / "raw.bin").exists() and not (second / ".dvc" / "cache").exists()
    dvc(second, "pull", "raw.bin", env=env)
    assert (second / "raw.bin").read_bytes() == (first / "raw.bin").read_bytes()
    out = dvc(second, "repro", "--pull", env=env)
    assert (second / "out.txt").read_text() == "SHARED DATA\n"
    assert not (second / "runs.log").exists(), out  # restored from the remote, not recomputed
    assert (first / "runs.log").read_text() == "ran"

    # without credentials the same pull is refused, and nothing DVC or git keeps holds them
    nobody = clean_env(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"))
    (second / "raw.bin").unlink()
    dvc(second, "gc", "-w", "-f", "-q", env=env)
    refused = subprocess.run([str(BIN / "dvc"), "pull", "raw.bin"], cwd=second, env=nobody, capture_output=True,
                             text=True, timeout=180)
    assert refused.returncode != 0 and "Unable to locate credentials" in refused.stderr, refused.stderr
    assert not (second / "raw.bin").exists()
    for root in (first, second):
        kept = [p.read_text(errors="replace") for p in (root / ".dvc").glob("config*")]
        kept += subprocess.run(["git", "grep", "-I", "-h", "-e", "."], cwd=root, capture_output=True,
                               text=True).stdout.splitlines()
        assert not any(s3_store.env[k] in text for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
                       for text in kept)


def test_mlflow_logs_artifacts_to_an_s3_artifact_location(s3_store, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    for name, value in s3_store.env.items():
        monkeypatch.setenv(name, value)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    location = f"s3://{s3_store.bucket}/mlflow-direct"
    experiment_id = client.create_experiment("s3-artifacts", artifact_location=location)
    run = client.create_run(experiment_id, run_name="to-s3")
    client.log_text(run.info.run_id, "curated 78 samples\n", "reports/curate.md")
    client.set_terminated(run.info.run_id)

    assert run.info.artifact_uri == f"{location}/{run.info.run_id}/artifacts"
    assert s3_store.keys("mlflow-direct/") == [f"mlflow-direct/{run.info.run_id}/artifacts/reports/curate.md"]
    local = client.download_artifacts(run.info.run_id, "reports/curate.md", str(tmp_path))
    assert Path(local).read_text() == "curated 78 samples\n"
