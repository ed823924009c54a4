"""The two UIs the team looks at, rendered by headless Chromium against the team setup (tests/stack.py): the
Prefect UI's deployments page lists prefect.yaml's deployments, and MLflow's run-compare page lines up two
finished runs. Screenshots are kept in the test's temp dir (their paths are printed) for a look by eye.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                                 reason="chromium missing: 'sudo apt-get install chromium' (make setup does it as root)"),
              pytest.mark.slow]  # with the team fixture's servers: over a minute on 2 cores


def chromium(url: str, screenshot: Path, timeout_s: float = 120) -> str:
    """The page's DOM once the single-page app has rendered; a PNG of it goes to ``screenshot``."""
    profile = tempfile.mkdtemp(prefix="limi-chromium-")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={profile}",
           # without a virtual-time budget the apps are captured before they render
           "--virtual-time-budget=15000", "--window-size=1400,900", "--dump-dom", f"--screenshot={screenshot}", url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        dom, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, err[-3000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000, err[-3000:]
    print(f"screenshot of {url}: {screenshot}")
    screenshot.with_suffix(".html").write_text(dom)
    return dom


def test_prefect_deployments_page_lists_the_deployments(team, tmp_path):
    page = f"{team.prefect_url}/deployments"
    dom = chromium(page, tmp_path / "prefect-deployments.png")
    for name in ("limi-pipeline", "collect-only", "eval-only"):
        assert name in dom, f"{name!r} not on {page}"


def test_mlflow_compare_page_lines_up_two_finished_runs(team, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(team.mlflow_url)
    experiment_id = client.create_experiment("ui-compare")
    run_ids = []
    for name, epochs, loss in (("baseline-1ep", 1, 1.25), ("longer-3ep", 3, 0.75)):
        run = client.create_run(experiment_id, run_name=name)
        client.log_param(run.info.run_id, "sft.epochs", epochs)
        client.log_metric(run.info.run_id, "sft.final_loss", loss)
        client.set_terminated(run.info.run_id)
        run_ids.append(run.info.run_id)
    page = (f"{team.mlflow_url}/#/compare-runs?runs={quote(json.dumps(run_ids))}"
            f"&experiments={quote(json.dumps([experiment_id]))}")
    dom = chromium(page, tmp_path / "mlflow-compare.png")
    for text in ("baseline-1ep", "longer-3ep", "sft.final_loss"):
        assert text in dom, f"{text!r} not on {page}"
