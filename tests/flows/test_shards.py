"""Collection on two machines: a Prefect server, two process workers in their own checkouts, a shared S3 remote.

The project is a minimal one with the real collect stages (collect_shard@0..3 and the merge) and the replay
teacher on tasks whose verification takes a moment. One worker is killed with SIGKILL while its shard's
episodes run; the pipeline still completes, the lost shard runs again on the other worker, and the merged
trajectories equal a one-machine run's.
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

import psutil
import pytest
import yaml

from tests.conftest import REPO
from tests.stack import BIN, clean_env, dump_logs, free_port, start, stop, wait_healthy
from tests.test_collect import write_queries

GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
SHARDS = 4
QUERIES = 8


def origin_project(root: Path, s3_store) -> Path:
    """The checkout every machine clones: the code, prefect.yaml, the two collect stages, queries, a remote."""
    root.mkdir(parents=True)
    for name in ("pipelines", "flows"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("prefect.yaml", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    write_queries(root, QUERIES)
    queries = [json.loads(line) for line in (root / "queries.jsonl").read_text().splitlines()]
    for q in queries:  # each verification takes a moment: a kill can land mid-shard
        q["verifier"]["commands"].append("sleep 1.5")
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["collect"].update(seeds=False, drills=False, query_files=["queries.jsonl"], parallel=1, shards=SHARDS,
                             teachers=[{"model": "replay", "sources": ["human"]}])
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    stages = {name: dvc["stages"][name] for name in ("collect_shard", "collect")}
    for spec in stages.values():  # the data this project has instead of the full pipeline's
        spec["deps"] = [d for d in spec["deps"] if d.startswith(("pipelines", "data/shards"))] + ["queries.jsonl",
                                                                                                 "solutions"]
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    env = clean_env()
    subprocess.run([sys.executable, "-m", "pipelines.tools.stage_deps", "--write"], cwd=root, env=env, check=True,
                   capture_output=True)
    spec = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    assert spec["collect_shard"]["matrix"]["shard"] == list(range(SHARDS))
    commit_with_remote(root, f"s3://{s3_store.bucket}/shards", s3_store.endpoint, env,
                       "a project collected on two machines")
    return root


def commit_with_remote(root: Path, url: str, endpoint: str, env: dict, message: str) -> None:
    """Make ``root`` a git and DVC repository whose default DVC remote is ``url`` on the S3 ``endpoint``,
    everything in it committed."""
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    for args in (["init", "-q"], ["remote", "add", "-d", "shared", url],
                 ["remote", "modify", "shared", "endpointurl", endpoint]):
        subprocess.run([str(BIN / "dvc"), *args], cwd=root, env=env, check=True, capture_output=True)
    subprocess.run([*GIT, "add", "-A"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", message], cwd=root, check=True)


def clone(origin: Path, where: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(origin), str(where)], check=True)
    return where


def episodes(path: Path) -> list[tuple[str, str, bool]]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [(r["meta"]["episode_key"], r["meta"]["task_id"], r["meta"]["passed"]) for r in records]


def shard_in_flight(worker: psutil.Process) -> int | None:
    """The shard whose episodes a worker's process tree is running right now (a verification under way)."""
    try:
        tree = worker.children(recursive=True)
        shard = None
        for proc in tree:
            cmd = proc.cmdline()
            if "pipelines.collect" in cmd and "--shard" in cmd:
                shard = int(cmd[cmd.index("--shard") + 1])
        if shard is not None and any(p.name() == "sleep" for p in tree):
            return shard
    except psutil.NoSuchProcess:
        pass
    return None


def kill_tree(worker: psutil.Process) -> None:
    """What a machine failure does to a worker: SIGKILL to it and everything it started, all at once."""
    procs = [worker, *worker.children(recursive=True)]
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


def test_a_sharded_stage_is_selected_with_its_shards_and_shares_their_policy():
    from flows.dag import StageInfo, select
    from flows.pipeline import STAGE_POLICIES, policy
    from flows.shards import deployment_for

    names = ["base_model", "collect_shard@0", "collect_shard@1", "collect", "curate"]
    stages = [StageInfo(name, f"dvc.yaml:{name}") for name in names]
    pick = lambda *wanted: [s.name for s in select(stages, list(wanted))]  # noqa: E731
    assert pick("collect") == ["collect_shard@0", "collect_shard@1", "collect"]
    assert pick("collect_shard") == ["collect_shard@0", "collect_shard@1"] == pick("collect_shard@1", "collect_shard@0")
    assert pick("curate", "base_model") == ["base_model", "curate"]
    with pytest.raises(ValueError, match="unknown stage.*'collect_shard@2'"):
        select(stages, ["collect_shard@2"])
    assert policy("collect_shard@1") == STAGE_POLICIES["collect_shard"] and policy("collect").retries == 0
    assert deployment_for("collect_shard@3") == "limi-shard/collect-shard"
    assert deployment_for("eval_shard@0") == "limi-shard/eval-shard"


TOY_CMD = ("python -c \"import pathlib; out = pathlib.Path('out/s${item.shard}'); out.mkdir(parents=True); "
           "(out / 'f').write_text(pathlib.Path('data.txt').read_text() * (${item.shard} + 1)); "
           "open('runs.log', 'a').write('${item.shard}')\"")


def test_a_shard_run_on_another_checkout_comes_back_from_the_run_cache_never_rerun(tmp_path, s3_store):
    from pipelines.core.dvc import StageFailed, run_dvc, stage_environment

    env = stage_environment({k: v for k, v in s3_store.env.items() if k.startswith("AWS_")})
    home = tmp_path / "home"
    home.mkdir()
    (home / "data.txt").write_text("shared\n")
    (home / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"toy": {
        "matrix": {"shard": [0, 1]}, "cmd": TOY_CMD, "deps": ["data.txt"], "outs": ["out/s${item.shard}"]}}}))
    (home / ".gitignore").write_text("/runs.log\n")
    commit_with_remote(home, f"s3://{s3_store.bucket}/runcache-{tmp_path.name}", s3_store.endpoint, env, "toy")
    worker = clone(home, tmp_path / "worker")

    lines: list[str] = []
    ran = run_dvc(["shard", "toy@1"], root=worker, env=env, log=lines.append)
    assert ran.ran == ["toy@1"] and (worker / "runs.log").read_text() == "1"
    back = run_dvc(["restore", "toy@1"], root=home, env=env, log=lines.append)
    assert back.restored == ["toy@1"] and back.ran == []
    assert (home / "out/s1/f").read_text() == "shared\nshared\n" and not (home / "runs.log").exists()
    # a shard nobody ran (or ran at another commit) is refused here rather than run
    with pytest.raises(StageFailed, match="toy@0: no run-cache entry matches") as failed:
        run_dvc(["restore", "toy@0"], root=home, env=env, log=lines.append)
    assert not failed.value.retryable and not (home / "runs.log").exists() and not (home / "out/s0").exists()
    # a shard submitted again to a checkout that lost its output (a re-submission after a crash that came
    # after the push): the output comes back from the remote, nothing reruns
    shutil.rmtree(worker / "out")
    again = run_dvc(["shard", "toy@1"], root=worker, env=env, log=lines.append)
    assert again.ran == [] and (worker / "runs.log").read_text() == "1"
    assert (worker / "out/s1/f").read_text() == "shared\nshared\n"


@pytest.mark.slow  # a Prefect server, two workers, a crash detected by missing heartbeats (about 3 minutes)
@pytest.mark.needs_bwrap
def test_collect_shards_survive_a_killed_worker_and_merge_like_one_machine(tmp_path, s3_store):
    origin = origin_project(tmp_path / "origin", s3_store)
    logs = tmp_path / "logs"
    logs.mkdir()
    port = free_port()
    aws = {k: v for k, v in s3_store.env.items() if k.startswith("AWS_")}
    base = clean_env(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
                     PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_FLOWS_HEARTBEAT_FREQUENCY="30", **aws)

    def env_for(root: Path) -> dict:  # each checkout imports its own code
        return {**base, "LIMI_ROOT": str(root), "PYTHONPATH": str(root)}

    # the one-machine run, unsharded, while the servers start
    solo = clone(origin, tmp_path / "solo")
    one_machine = start([sys.executable, "-m", "pipelines.collect"], logs / "solo.log", env=env_for(solo), cwd=solo)
    procs = [start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                   logs / "server.log", env=base, cwd=tmp_path)]
    workers: dict[str, subprocess.Popen] = {}
    try:
        wait_healthy(f"http://127.0.0.1:{port}/api/health", procs[0])

        def run(*args: str, cwd: Path = origin, timeout: int = 120) -> str:
            result = subprocess.run(list(args), cwd=cwd, env=env_for(cwd), capture_output=True, text=True,
                                    timeout=timeout)
            assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            return result.stdout + result.stderr

        # heartbeats every 30 s: a run silent for 50 s is Crashed; at most two shards at once on the pool
        run(sys.executable, "-m", "flows.shards", "setup", "--pool", "limi-process", "--limit", "2",
            "--missing-after", "50")
        run(str(BIN / "prefect"), "--no-prompt", "deploy", "--name", "collect-shard")
        for name in ("a", "b"):
            checkout = clone(origin, tmp_path / name)
            workers[name] = start([sys.executable, "-m", "flows.worker", "--pool", "limi-process", "--limit", "1",
                                   "--name", f"worker-{name}"], logs / f"worker-{name}.log", env=env_for(checkout),
                                  cwd=checkout)
            procs.append(workers[name])
        pipeline = start([sys.executable, "-m", "flows.pipeline", "--stages", "collect", "--on-pool"],
                         logs / "pipeline.log", env=env_for(origin), cwd=origin)
        procs.append(pipeline)

        # worker a dies in the middle of a shard: its episodes are under way, nothing pushed yet
        victim = psutil.Process(workers["a"].pid)
        lost = None
        deadline = time.monotonic() + 150
        while lost is None and time.monotonic() < deadline and pipeline.poll() is None:
            lost = shard_in_flight(victim)
            time.sleep(0.2)
        assert lost is not None, "worker a never ran a shard"
        kill_tree(victim)
        assert not (tmp_path / "b" / "data/shards/collect" / str(lost)).exists()

        assert pipeline.wait(timeout=300) == 0
        assert one_machine.wait(timeout=120) == 0
    except BaseException:
        dump_logs(logs)
        raise
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                stop(proc, term_grace=10)
        if one_machine.poll() is None:
            one_machine.kill()

    out = (logs / "pipeline.log").read_text()
    # the lost shard ran again, on the other worker; every shard came back through the run cache
    assert (tmp_path / "b" / "data/shards/collect" / str(lost) / "report.json").exists(), out[-3000:]
    assert f"collect_shard@{lost}: flow run" in out and "crashed" in out, out[-3000:]
    for i in range(SHARDS):
        assert f"Stage 'collect_shard@{i}' is cached - skipping run, checking out outputs" in out, out[-3000:]
    assert not (origin / "data/shards/journal").exists()  # no shard ran in the parent's checkout
    # the merged trajectories: a one-machine run's episodes, none lost, none twice, the same verdicts, same order
    merged = episodes(origin / "data/trajectories/episodes.jsonl")
    alone = episodes(solo / "data/trajectories/episodes.jsonl")
    assert merged == alone and len({key for key, _, _ in merged}) == QUERIES
    assert all(passed for _, _, passed in merged)
    report = json.loads((origin / "data/trajectories/report.json").read_text())
    assert report["episodes"] == report["planned"] == QUERIES and report["crashed"] == []
