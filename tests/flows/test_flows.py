"""The limi-pipeline flow on toy DVC projects: DVC decides what runs, MLflow nests it, Prefect retries it,
and the prefect.yaml deployments run on a real server and process worker.

The toy projects are written here (three trivial stages a -> b -> c), never copied from the real pipeline.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.stack import free_port, stop, wait_healthy

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


# ------------------------------------------------------------------------------------------------ toys
# The toy stages' code, written into each toy project; a stage's cmd is a one-line `python -c` calling it
# (DVC runs each line of a multi-line cmd as a command of its own).
TOY_STAGE = """
import json, pathlib, yaml


def main(stage, reads, writes, tracked=True, metrics=None):
    params = yaml.safe_load(open("params.yaml"))[stage]
    text = "".join(pathlib.Path(p).read_text() for p in reads) + stage * params["n"]
    if not tracked:
        return write(text, writes, metrics)
    from pipelines.core.tracking import stage_run

    with stage_run(stage, params) as run:
        write(text, writes, metrics)
        run.log_metrics({"chars": len(text)})


def write(text, path, metrics):
    pathlib.Path(path).write_text(text)
    if metrics:
        pathlib.Path(metrics).parent.mkdir(exist_ok=True)
        pathlib.Path(metrics).write_text(json.dumps({"kept": len(text), "ratio": 0.5}))
"""


def stage_cmd(stage: str, reads: list[str], writes: str, *, tracked: bool, metrics: str | None = None) -> str:
    """Writes ``writes``: its inputs plus ``<stage>`` times param ``<stage>.n``; in a stage_run if ``tracked``."""
    return (f"python -c \"import toy_stage; toy_stage.main('{stage}', {reads!r}, '{writes}', "
            f"tracked={tracked}, metrics={metrics!r})\"")


def abc_stages(tracked: tuple[str, ...] = ("a", "b", "c")) -> dict:
    """a -> b -> c; c also writes metrics/curate.json so the parent's summary copy has something to copy."""
    return {
        "a": {"cmd": stage_cmd("a", [], "a.txt", tracked="a" in tracked), "deps": ["toy_stage.py"],
              "params": ["a"], "outs": ["a.txt"]},
        "b": {"cmd": stage_cmd("b", ["a.txt"], "b.txt", tracked="b" in tracked), "deps": ["toy_stage.py", "a.txt"],
              "params": ["b"], "outs": ["b.txt"]},
        "c": {"cmd": stage_cmd("c", ["b.txt"], "c.txt", tracked="c" in tracked, metrics="metrics/curate.json"),
              "deps": ["toy_stage.py", "b.txt"], "params": ["c"], "outs": ["c.txt"],
              "metrics": ["metrics/curate.json"]},
    }


def make_toy(root: Path, stages: dict, params: dict | None = None) -> Path:
    """A git + DVC project at ``root`` with ``stages``; everything committed."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    (root / "toy_stage.py").write_text(TOY_STAGE)
    params = params or {name: {"n": 1} for name in stages}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=root, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", "toy"], cwd=root, check=True)
    return root


def set_param(root: Path, stage: str, n: int) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[stage]["n"] = n
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def statuses(result: dict) -> dict[str, str]:
    return {r["stage"]: r["status"] for r in result["stages"]}


# --------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """A temporary Prefect API (SQLite) for the whole file, with its own PREFECT_HOME."""
    from prefect.settings import PREFECT_HOME, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    with temporary_settings(updates={PREFECT_HOME: str(home)}), prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture(scope="session")
def mlflow_db(tmp_path_factory) -> Path:
    """One SQLite store for the in-process tests: its schema is created once (about 1.3 s), not per test."""
    return tmp_path_factory.mktemp("mlflow") / "mlflow.db"


@pytest.fixture
def mlflow_uri(mlflow_db, monkeypatch) -> str:
    uri = f"sqlite:///{mlflow_db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("LIMI_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return uri


def children(client, parent_id: str) -> list:
    from mlflow.entities import ViewType

    parent = client.get_run(parent_id)
    return client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'",
                              run_view_type=ViewType.ALL)


def artifact_keys(flow_run_id: str) -> set[str]:
    from uuid import UUID

    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)])))
    return {a.key for a in found}


# ------------------------------------------------------------------------------------------------ tests
def test_stage_order_comes_from_dvc(tmp_path):
    from flows.dag import read_stages, select

    # declared out of order: DVC's graph, not the file, decides
    stages = abc_stages(tracked=())
    root = make_toy(tmp_path / "p", {"c": stages["c"], "a": stages["a"], "b": stages["b"]})
    order = read_stages(root)
    assert [s.name for s in order] == ["a", "b", "c"]
    assert order[2].summary_files == ("metrics/curate.json",)
    assert [s.name for s in select(order, ["c", "a"])] == ["a", "c"]
    with pytest.raises(ValueError, match="unknown stage.*'x'.*defines: a, b, c"):
        select(order, ["x"])


def test_dvc_decides_what_runs_and_mlflow_nests_it(prefect_harness, mlflow_uri, tmp_path):
    from mlflow import MlflowClient

    from flows.pipeline import limi_pipeline

    root = make_toy(tmp_path / "toy", abc_stages())
    client = MlflowClient(mlflow_uri)

    first = limi_pipeline(root=str(root))
    assert statuses(first) == {"a": "ran", "b": "ran", "c": "ran"}
    parent = client.get_run(first["mlflow_run_id"])
    assert parent.info.status == "FINISHED" and parent.info.run_name == "pipeline"
    assert {parent.data.tags[f"stage.{s}"] for s in "abc"} == {"ran"}
    flow_run_id = parent.data.tags["prefect.flow_run_id"]
    assert flow_run_id
    assert parent.data.metrics["curate.kept"] == len("abc") and parent.data.metrics["curate.ratio"] == 0.5
    kids = children(client, parent.info.run_id)
    assert sorted(k.info.run_name for k in kids) == ["a", "b", "c"]
    assert all(k.data.tags["mlflow.parentRunId"] == parent.info.run_id for k in kids)
    assert all(k.data.tags["prefect.flow_run_id"] == flow_run_id for k in kids)
    assert {"stage-a", "stage-b", "stage-c", "mlflow-run"} <= artifact_keys(flow_run_id)

    second = limi_pipeline(root=str(root))
    assert statuses(second) == {"a": "skipped", "b": "skipped", "c": "skipped"}
    again = client.get_run(second["mlflow_run_id"])
    assert {again.data.tags[f"stage.{s}"] for s in "abc"} == {"skipped"}
    assert children(client, again.info.run_id) == []
    assert len(children(client, parent.info.run_id)) == 3

    set_param(root, "b", 2)
    third = limi_pipeline(root=str(root))
    assert statuses(third) == {"a": "skipped", "b": "ran", "c": "ran"}
    assert sorted(k.info.run_name for k in children(client, third["mlflow_run_id"])) == ["b", "c"]
    assert (root / "c.txt").read_text() == "abbc"


def _counting_cmd(fail_until: int, status: int) -> str:
    """Counts its invocations in ``calls``; exits ``status`` until the count reaches ``fail_until``."""
    return ("python -c \"import pathlib, sys; calls = pathlib.Path('calls'); "
            "n = int(calls.read_text()) + 1 if calls.exists() else 1; calls.write_text(str(n)); "
            f"n < {fail_until} and sys.exit({status}); pathlib.Path('out.txt').write_text('done')\"")


def test_a_flaky_stage_is_retried_until_it_passes(prefect_harness, mlflow_uri, tmp_path, monkeypatch):
    from flows import pipeline

    root = make_toy(tmp_path / "flaky", {"flaky": {"cmd": _counting_cmd(2, 3), "outs": ["out.txt"]}}, {})
    monkeypatch.setitem(pipeline.STAGE_POLICIES, "flaky", pipeline.StagePolicy(retries=2, backoff_s=0, timeout_s=120))
    result = pipeline.limi_pipeline(root=str(root))
    [record] = result["stages"]
    assert (record["stage"], record["status"], record["attempts"]) == ("flaky", "ran", 2)
    assert (root / "calls").read_text() == "2" and (root / "out.txt").read_text() == "done"


def test_a_stage_failing_on_bad_input_fails_the_flow_without_retries(prefect_harness, mlflow_uri, tmp_path,
                                                                      monkeypatch):
    from mlflow import MlflowClient

    from flows import pipeline

    root = make_toy(tmp_path / "broken", {"broken": {"cmd": _counting_cmd(99, 2), "outs": ["out.txt"]}}, {})
    monkeypatch.setitem(pipeline.STAGE_POLICIES, "broken", pipeline.StagePolicy(retries=2, backoff_s=0, timeout_s=60))
    state = pipeline.limi_pipeline(root=str(root), return_state=True)
    assert state.is_failed()
    assert (root / "calls").read_text() == "1"  # exit status 2 = bad input: a retry cannot help
    client = MlflowClient(mlflow_uri)
    [parent] = client.search_runs([client.get_experiment_by_name("limi-pipeline").experiment_id],
                                  "tags.`pipeline.stages` = 'broken'")
    assert parent.info.status == "FAILED" and parent.data.tags["stage.broken"] == "failed"


def test_a_timed_out_stage_is_killed_with_its_command(tmp_path):
    from pipelines.core.dvc import run_dvc, stage_environment

    hang = "python -c \"import os, pathlib, time; pathlib.Path('pid').write_text(str(os.getpid())); time.sleep(120)\""
    root = make_toy(tmp_path / "slow", {"slow": {"cmd": hang, "outs": ["never.txt"]}})
    with pytest.raises(TimeoutError, match="no result after 3s"):
        run_dvc(["repro", "dvc.yaml:slow"], root=root, env=stage_environment({}), timeout_s=3, log=lambda line: None)
    stat = Path(f"/proc/{int((root / 'pid').read_text())}/stat")
    # the stage's own command went down with DVC: gone, or a zombie waiting for init to reap it
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


EVAL_JSON = {"k": 1, "models": {"base": {"overall": {"sr_at_r": 20.0, "rc_at_r": None}, "categories": {}},
                                 "tuned": {"overall": {"sr_at_r": 40.0, "rc_at_r": 12.5}, "categories": {}}}}


def test_eval_metrics_become_a_table_artifact_and_parent_metrics(prefect_harness, mlflow_uri, tmp_path):
    import json

    from mlflow import MlflowClient
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.pipeline import limi_pipeline

    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "scores.json").write_text(json.dumps(EVAL_JSON))
    copy = "python -c \"import os, shutil; os.makedirs('metrics'); shutil.copy('scores.json', 'metrics/eval.json')\""
    stage = {"cmd": copy, "deps": ["scores.json"], "metrics": ["metrics/eval.json"]}
    root = make_toy(tmp_path / "eval", {"eval": stage})
    result = limi_pipeline(root=str(root))
    metrics = MlflowClient(mlflow_uri).get_run(result["mlflow_run_id"]).data.metrics
    assert metrics["eval.k"] == 1 and metrics["eval.tuned.sr_at_r"] == 40.0 and "eval.base.rc_at_r" not in metrics
    with get_client(sync_client=True) as client:
        [table] = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["eval-metrics"])))
    assert table.type == "table" and json.loads(table.data) == [
        {"model": "base", "sr_at_r": 20.0, "rc_at_r": None}, {"model": "tuned", "sr_at_r": 40.0, "rc_at_r": 12.5}]


def test_mlflow_links_carry_no_credentials():
    from flows.records import ParentRun

    assert ParentRun(None, "r1", "3", "e", "https://u:secret@mlflow.example.com/prefix/").ui_url() == \
        "https://mlflow.example.com/prefix/#/experiments/3/runs/r1"
    assert ParentRun(None, "r1", "3", "e", "sqlite:///mlflow.db").ui_url() is None


def test_overrides_run_as_a_named_dvc_experiment(prefect_harness, mlflow_uri, tmp_path, monkeypatch):
    import dvc.api
    from mlflow import MlflowClient

    from flows import pipeline

    for var in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(var, "t")
    for var in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(var, "t@example.com")
    root = make_toy(tmp_path / "exp", abc_stages(tracked=("b",)))
    params_before = (root / "params.yaml").read_text()

    result = pipeline.limi_pipeline(root=str(root), overrides={"b.n": "3"}, experiment="b-three")
    assert statuses(result) == {"a": "ran", "b": "ran", "c": "ran"}
    assert result["experiment"] == "b-three" and result["exp_rev"]
    assert (root / "params.yaml").read_text() == params_before and not (root / "c.txt").exists()
    assert dvc.api.read("c.txt", repo=str(root), rev=result["exp_rev"]) == "abbbc"
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=root,
                          capture_output=True, text=True, check=True).stdout
    assert refs.strip().endswith("/b-three")

    client = MlflowClient(mlflow_uri)
    parent = client.get_run(result["mlflow_run_id"])
    assert parent.data.tags["dvc.experiment"] == "b-three" and parent.data.params["override.b.n"] == "3"
    assert parent.data.metrics["curate.kept"] == len("abbbc")  # read from the experiment, not the workspace
    [child] = children(client, parent.info.run_id)  # b ran in DVC's temporary copy, still nested here
    assert child.info.run_name == "b"

    # a taken name is DVC refusing the request: no retry, however many b's policy allows
    monkeypatch.setitem(pipeline.STAGE_POLICIES, "b", pipeline.StagePolicy(retries=2, backoff_s=0))
    state = pipeline.limi_pipeline(root=str(root), overrides={"b.n": "4"}, experiment="b-three", return_state=True)
    assert state.is_failed() and "conflicts with existing experiment" in state.message
    [failed] = client.search_runs([parent.info.experiment_id], "tags.`dvc.experiment` = 'b-three'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
    assert failed.info.status == "FAILED" and failed.data.tags["stage.exp-b-three"] == "failed"


def test_command_line_help_and_overrides(tmp_path):
    from flows.pipeline import parse_overrides

    assert parse_overrides(["sft.epochs=3", "a.b=x=y"]) == {"sft.epochs": "3", "a.b": "x=y"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["sft.epochs"])
    out = subprocess.run([sys.executable, "-m", "flows.pipeline", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO),
                                                     "PREFECT_HOME": str(tmp_path / "prefect-home")})
    assert out.returncode == 0 and "--stages" in out.stdout and "--set KEY=VALUE" in out.stdout


# ------------------------------------------------------------------------------- a real deployment
WORKER_GRACE_S = 20  # the worker's --grace: from SIGTERM to exit, handing back runs and its teardown included


def ignore_sigint() -> None:
    """What a non-interactive shell does to a command it starts with ``&`` (a CI script, ``nohup``), inherited by
    everything below it: SIGINT ignored. Prefect's own ``prefect worker start`` then never stops on SIGTERM (it
    forwards the SIGTERM to itself as a SIGINT); ``python -m flows.worker`` must."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def local_prefect(tmp_path: Path, root: Path):
    """A Prefect server on loopback with the ``limi-process`` pool and prefect.yaml's deployments of ``root``;
    yields ``(cli, start_worker, logs)``. The server is stopped at the end; so is every worker not yet stopped."""
    shutil.copy(REPO / "prefect.yaml", root / "prefect.yaml")
    shutil.copytree(REPO / "flows", root / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "LIMI_"))}
    env.update({
        "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api", "PREFECT_WORKER_QUERY_SECONDS": "1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "PATH": os.pathsep.join([str(BIN), env.get("PATH", "")]),
        "PYTHONPATH": str(REPO),  # `pipelines`; the flow's own code comes from the project's checkout
    })
    logs = tmp_path / "logs"
    logs.mkdir()

    def cli(*args: str, cwd: Path = tmp_path, timeout: int = 120):
        result = subprocess.run([str(BIN / "prefect"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                                timeout=timeout)
        assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result.stdout

    workers: list[subprocess.Popen] = []

    def start_worker(name: str) -> subprocess.Popen:
        # deployed without LIMI_ROOT: the pull step's {{ $LIMI_ROOT }} is resolved by the worker at run time
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "flows.worker", "--pool", "limi-process", "--grace", str(WORKER_GRACE_S)],
            cwd=tmp_path, env={**env, "LIMI_ROOT": str(root)}, stdout=(logs / f"{name}.log").open("w"),
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=ignore_sigint))
        return workers[-1]

    server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=tmp_path, env=env, stdout=(logs / "server.log").open("w"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/api/health", server)
        cli("work-pool", "create", "limi-process", "--type", "process")
        cli("--no-prompt", "deploy", "--all", cwd=root)
        yield cli, start_worker, logs
    except BaseException:
        for log in sorted(logs.iterdir()):
            print(f"--- {log.name} ---\n" + log.read_text(errors="replace")[-4000:])
        raise
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        assert stop(server) == signal.SIGINT  # the server stops on Ctrl-C


def stop_worker(worker: subprocess.Popen, log: Path) -> float:
    """SIGTERM to the worker's process group, as systemd does by default; the seconds it took to exit. It must exit
    on that SIGTERM, cleanly, within its grace period; SIGKILL follows only to clean up after a failure."""
    started = time.monotonic()
    stopped_by = stop(worker, ctrl_c=False, term_grace=WORKER_GRACE_S + 10)
    took = time.monotonic() - started
    tail = log.read_text(errors="replace")[-2000:]
    assert stopped_by == signal.SIGTERM and took <= WORKER_GRACE_S + 1, f"{stopped_by!r} after {took:.1f} s:\n{tail}"
    assert worker.returncode == 0 and "limi worker | stopped after" in tail, tail
    return took


@pytest.mark.slow  # a real Prefect server and worker
def test_prefect_yaml_deployment_runs_on_a_process_worker(tmp_path):
    root = make_toy(tmp_path / "project", abc_stages(tracked=()))
    with local_prefect(tmp_path, root) as (cli, start_worker, logs):
        worker = start_worker("worker")
        out = cli("deployment", "run", "limi-pipeline/full", "--watch", "--watch-interval", "1", timeout=240)
        assert "Completed" in out, out
        assert (root / "c.txt").read_text() == "abc"

        from mlflow import MlflowClient

        client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
        [parent] = client.search_runs([client.get_experiment_by_name("limi-pipeline").experiment_id])
        assert parent.info.status == "FINISHED"
        assert {parent.data.tags[f"stage.{s}"] for s in "abc"} == {"ran"}
        assert parent.data.tags["prefect.flow_run_id"]
        # right after the run, its process possibly still exiting: the SIGTERM reaches both
        stop_worker(worker, logs / "worker.log")


def state(cli, run_id: str) -> tuple[str, str]:
    """A flow run's state: (type, name)."""
    current = json.loads(cli("flow-run", "inspect", run_id, "--output", "json"))["state"]
    return current["type"], current["name"]


# A stage that naps the first time it runs in a checkout (its mark file tells), then writes its output.
NAP_STAGE = ("python -c \"import os, pathlib, time; first = not os.path.exists('attempts'); "
             "open('attempts', 'a').write('x'); time.sleep(120 if first else 0); "
             "pathlib.Path('nap.txt').write_text('done')\"")


@pytest.mark.slow  # a real Prefect server and two workers
def test_a_flow_run_in_flight_goes_back_to_the_pool_when_its_worker_stops(tmp_path):
    import psutil

    root = make_toy(tmp_path / "project", {"nap": {"cmd": NAP_STAGE, "outs": ["nap.txt"]}}, {})
    with local_prefect(tmp_path, root) as (cli, start_worker, logs):
        first = start_worker("first")
        out = cli("deployment", "run", "limi-pipeline/full")
        run_id = next(line.split("UUID:")[1].strip() for line in out.splitlines() if "UUID:" in line)
        deadline = time.monotonic() + 120
        while not (root / "attempts").exists():  # the stage is running
            assert time.monotonic() < deadline and first.poll() is None, (logs / "first.log").read_text()
            time.sleep(0.5)
        napping = [p for p in psutil.process_iter(["cmdline"]) if "time.sleep(120" in " ".join(p.info["cmdline"] or [])]
        assert napping
        stop_worker(first, logs / "first.log")
        # the run went back to the pool, and its stage was stopped with it: nothing recorded, nothing left running
        assert state(cli, run_id) == ("SCHEDULED", "AwaitingRetry")
        assert not (root / "nap.txt").exists() and not (root / "dvc.lock").exists()
        assert not [p for p in napping if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

        second = start_worker("second")
        deadline = time.monotonic() + 180
        while (now := state(cli, run_id))[0] != "COMPLETED":
            assert time.monotonic() < deadline and now[0] in ("SCHEDULED", "PENDING", "RUNNING"), now
            time.sleep(2)
        assert (root / "nap.txt").read_text() == "done" and (root / "attempts").read_text() == "xx"
        assert "nap:" in (root / "dvc.lock").read_text()
        stop_worker(second, logs / "second.log")
