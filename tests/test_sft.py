"""The sft stage as a user runs it, on a tiny randomly initialised Llama with the real tokenizer and template."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipelines.training import cpu_kernels
from tests.conftest import REPO, make_project, run_module
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


def _dvc_mode_project(root: Path, tiny_model_dir: Path) -> Path:
    """A project whose sft stage trains the tiny model for a few LoRA steps on three samples."""
    make_project(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["sft"].update({"max_steps": 3, "save_steps": 2, "learning_rate": 1.0e-3, "warmup_ratio": 0.0,
                          "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"}})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(tiny_model_dir, root / "models" / "base")
    (root / "data" / "sft").mkdir(parents=True)
    (root / "data" / "sft" / "train.jsonl").write_text("".join(json.dumps(sample(i)) + "\n" for i in range(3)))
    return root


def test_two_runs_write_the_same_bytes_and_keep_timings_out(tmp_path, tiny_model_dir):
    roots = [_dvc_mode_project(tmp_path / name, tiny_model_dir) for name in ("first", "second")]
    for root in roots:
        result = run_module("pipelines.sft", root=root, env={"CI": "1"})
        assert result.returncode == 0, result.stderr[-3000:]
    outputs = ["metrics/sft.json", "plots/sft/loss.csv", "plots/sft/loss.png"]
    outputs += sorted(p.relative_to(roots[0]).as_posix() for p in (roots[0] / "models" / "sft").rglob("*") if p.is_file())
    assert {"models/sft/adapter_config.json", "models/sft/sft_info.json"} <= set(outputs)
    assert [o for o in outputs if (roots[0] / o).read_bytes() != (roots[1] / o).read_bytes()] == []
    metrics = json.loads((roots[0] / "metrics" / "sft.json").read_text())
    assert metrics["steps"] == 3 and not {"train_seconds", "tokens_per_s", "peak_rss_mb", "resumed_from"} & set(metrics)
    assert (roots[0] / "plots" / "sft" / "loss.csv").read_text().startswith("step,loss,learning_rate,grad_norm\n")
    adapter = json.loads((roots[0] / "models" / "sft" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "models/base"  # not the host path of either project
    timings = json.loads((roots[0] / "reports" / "runs" / "sft.json").read_text())
    assert timings["train_seconds"] > 0 and timings["tokens_per_s"] > 0 and timings["resumed_from"] is None
    # the stage asked for the AVX2 kernels before torch loaded (pipelines.training.cpu_kernels)
    assert timings["cpu_kernels"] == ("AVX2" if cpu_kernels.has_avx2_fma() else timings["cpu_kernels"])
    assert "cpu_kernels" not in metrics


def test_a_kernel_setting_in_the_environment_is_kept(tmp_path, tiny_model_dir):
    root = _dvc_mode_project(tmp_path / "p", tiny_model_dir)
    result = run_module("pipelines.sft", root=root, env={"CI": "1", "ATEN_CPU_CAPABILITY": "default"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((root / "reports" / "runs" / "sft.json").read_text())["cpu_kernels"] == "DEFAULT"


def test_the_pin_applies_only_where_the_cpu_has_avx2_and_fma():
    avx2 = "processor\t: 0\nflags\t\t: fpu sse2 avx fma avx2 avx512f\n"
    env: dict[str, str] = {}
    assert cpu_kernels.pin(env, avx2) == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"} == env
    env = {"MKL_CBWR": "COMPATIBLE"}
    assert cpu_kernels.pin(env, avx2) == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE"}
    env = {}
    assert cpu_kernels.pin(env, "flags\t\t: fpu sse2 avx\n") == {} == env  # no AVX2: nothing asked for
