"""The sft stage as a user runs it, on a tiny randomly initialised Llama with the real tokenizer and template."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.training.samples import sample


def _standalone(root: Path, out: Path, data: Path, base: Path):
    env = {**os.environ, "LIMI_ROOT": str(root), "PYTHONPATH": str(REPO), "CI": "1"}
    return [sys.executable, "-m", "pipelines.sft", "--data", str(data), "--base", str(base), "--out", str(out)], env


@pytest.mark.slow  # two trainings and a kill: over a minute on 2 cores
def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path, tiny_model_dir):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "params.yaml").write_text(
        "sft: {method: lora, lora: {r: 8, alpha: 16}, max_steps: 8, save_steps: 2, batch_size: 1, "
        "learning_rate: 1.0e-3, warmup_ratio: 0.0}\n")
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps(sample(i, words=300)) + "\n" for i in range(4)))
    cmd, env = _standalone(root, root / "full", data, tiny_model_dir)
    subprocess.run(cmd, env=env, cwd=root, check=True, capture_output=True)
    reference = json.loads((root / "full" / "metrics.json").read_text())

    cmd, env = _standalone(root, root / "killed", data, tiny_model_dir)
    proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = root / ".killed.checkpoints"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (checkpoints / "checkpoint-4").exists():
        if proc.poll() is not None:
            pytest.fail("the run ended before it could be killed")
        time.sleep(0.01)
    time.sleep(0.3)  # let the checkpoint finish writing; the kill lands in steps 5-8
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (root / "killed" / "metrics.json").exists()
    subprocess.run(cmd, env=env, cwd=root, check=True, capture_output=True)
    resumed = json.loads((root / "killed" / "metrics.json").read_text())
    assert resumed["resumed_from"] and "checkpoint-" in resumed["resumed_from"]
    assert resumed["steps"] == reference["steps"] == 8
    assert resumed["final_loss"] == pytest.approx(reference["final_loss"], rel=1e-3)
