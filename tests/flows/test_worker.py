"""flows/worker.py without a server: what its flow-run processes are told, and how it splits its grace period.
The signals themselves are tested on a real server and workers in test_flows.py (slow)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import pytest

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def prepared(**variables):
    from prefect.client.schemas.objects import FlowRun

    from flows.worker import RescheduleOnTermConfiguration

    config = RescheduleOnTermConfiguration(**variables)
    config.prepare_for_flow_run(FlowRun(flow_id=uuid4(), name="a-run"))
    return config


def test_flow_runs_run_as_flow_run_execute_and_go_back_to_the_pool_on_sigterm():
    config = prepared()
    assert shlex.split(config.command) == [sys.executable, "-m", "prefect", "flow-run", "execute"]
    assert config.env["PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR"] == "reschedule"
    assert config.env["PREFECT__FLOW_RUN_ID"]  # what `flow-run execute` reads to know its run


def test_a_deployments_own_command_and_sigterm_behaviour_win():
    config = prepared(command="python -m prefect.engine",
                      env={"PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR": "crash"})
    assert config.command == "python -m prefect.engine"
    assert config.env["PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR"] == "crash"


@pytest.mark.parametrize("grace, drain_until, exit_by", [(30, 20, 29.5), (60, 50, 59.5), (4, 2, 3.5), (1, 0.5, 0.5)])
def test_the_grace_period_leaves_time_to_hand_runs_back(grace, drain_until, exit_by):
    from flows.worker import _phases

    assert _phases(grace) == (drain_until, exit_by)


def test_command_line():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "flows.worker", "--help"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "--grace" in out.stdout and "SIGTERM" in out.stdout
    out = subprocess.run([sys.executable, "-m", "flows.worker", "--pool", "p", "--grace", "0"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--grace must be at least 1 second" in out.stderr
