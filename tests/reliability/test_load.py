"""Load: the collect stage runs 100 short scripted episodes, 8 at once, in the real sandbox; every one is
recorded exactly once, nothing deadlocks, and the wall time and peak memory go into the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipelines.collection.writer import EPISODES_FILE
from pipelines.core.schema import read_trajectories
from tests.conftest import REPO, make_project
from tests.reliability.figures import FIGURES
from tests.reliability.helpers import count_records
from tests.reliability.test_faults import planned_keys

pytestmark = pytest.mark.needs_bwrap
EPISODES = 100
PARALLEL = 8


@pytest.mark.figure("load")
def test_hundred_scripted_episodes_eight_at_a_time(tmp_path):
    root = make_project(tmp_path / "proj")
    queries = [{"id": f"load{i}", "source": "human", "domain": "software", "category": "algorithm",
                "query": f"Write {i} into n.txt.", "workspace": {"files": {"README": f"task {i}\n"}},
                "verifier": {"kind": "tests", "commands": ["test -s README"]}} for i in range(EPISODES)]
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    # one turn list shared by the episodes (as one model serves them all), bash and finish interleaved: an
    # episode ends at the first finish it draws, so each takes one finish and zero or more bash steps
    turns = [{"tool_calls": [{"id": "c1", "function": {"name": "bash", "arguments": {"command": "echo 1 > n.txt"}}}]},
             {"tool_calls": [{"id": "c2", "function": {"name": "finish", "arguments": {"summary": "wrote n.txt"}}}]}]
    (root / "script.jsonl").write_text("".join(json.dumps(t) + "\n" for t in turns * EPISODES))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["llm"]["models"]["script"] = {"backend": "scripted", "script": str(root / "script.jsonl")}
    params["collect"].update(seeds=False, drills=False, query_files=["queries.jsonl"], parallel=PARALLEL, rounds=1,
                             teachers=[{"model": "script", "sources": ["human"]}])
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update({"LIMI_ROOT": str(root), "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": f"file://{tmp_path}/mlruns"})
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.collect"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = []
    import threading

    reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read().decode(errors="replace")), daemon=True)
    reader.start()
    deadline = started + 240
    status = None
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        proc.wait()
        pytest.fail("collect did not finish 100 episodes within 240 s (deadlock?)")
    wall = time.monotonic() - started
    reader.join(5)
    proc.returncode = os.waitstatus_to_exitcode(status)
    FIGURES.measure("load_episodes", EPISODES)
    FIGURES.measure("load_parallel", PARALLEL)
    FIGURES.measure("load_wall_seconds", round(wall, 1))
    FIGURES.measure("load_peak_rss_mb", round(usage.ru_maxrss / 1024, 1))
    assert proc.returncode == 0, "".join(stderr)[-2000:]
    episodes = root / "data/trajectories" / EPISODES_FILE
    assert count_records(episodes, planned_keys(root)) == (0, 0)
    records = read_trajectories(episodes)
    assert len(records) == EPISODES and all(r["meta"]["termination"] == "finished" for r in records)
    assert sum(r["meta"]["passed"] for r in records) == EPISODES
