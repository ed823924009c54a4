"""The base_model stage as a user runs it: a plain HF directory, the same bytes on every build, one MLflow run."""

import json
from pathlib import Path

import mlflow
import pytest

from tests.conftest import run_module


def test_stage_output_is_a_plain_hf_directory(base_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    names = {p.name for p in base_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= names
    model = AutoModelForCausalLM.from_pretrained(base_model_dir)
    AutoTokenizer.from_pretrained(base_model_dir)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    assert not getattr(model.config, "quantization_config", None)  # plain weights: no GGUF dequantisation on load
    info = json.loads((base_model_dir / "build_info.json").read_text())
    assert info["gguf_sha256"] and info["source"].startswith("embedded SmolLM2-135M-Instruct")
    assert not {"load_seconds", "reload_seconds"} & set(info)  # timings stay out of the DVC output
    timings = json.loads((base_model_dir.parents[1] / "reports" / "runs" / "base_model.json").read_text())
    assert timings["reload_seconds"] > 0  # the figure is reported, not asserted (noisy machines)
    assert not list(base_model_dir.parent.glob(".base.*"))  # no temp leftovers


def test_a_second_build_writes_the_same_bytes(built_project, tmp_path):
    from tests.conftest import make_project

    root = make_project(tmp_path / "again")
    result = run_module("pipelines.base_model", "--no-track", root=root)
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = built_project / "models" / "base", root / "models" / "base"
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert Path("build_info.json") in files and Path("model.safetensors") in files
    assert [f for f in files if (first / f).read_bytes() != (second / f).read_bytes()] == []


def test_stage_left_one_finished_run(built_project):
    mlflow.set_tracking_uri(f"sqlite:///{built_project / 'mlflow.db'}")
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FINISHED" and run.info.run_name == "base_model"
    for tag in ("git.commit", "git.dirty", "params_hash", "dvc.out.models/base"):
        assert tag in run.data.tags
    assert run.data.params["source"] == "embedded"


def test_cli_prints_one_line_and_exit_2(tmp_path):
    from tests.conftest import make_project

    root = make_project(tmp_path / "p")
    params = (root / "params.yaml").read_text().replace("source: embedded", f"source: {tmp_path / 'x.gguf'}")
    (root / "params.yaml").write_text(params)
    result = run_module("pipelines.base_model", root=root)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "x.gguf" in result.stderr
    assert not (root / "models" / "base").exists()


def test_bad_params_fail_at_stage_start(tmp_path):
    from tests.conftest import make_project

    root = make_project(tmp_path / "p")
    (root / "params.yaml").write_text("base_model:\n  dtype: int4\n")
    result = run_module("pipelines.base_model", root=root)
    assert result.returncode == 2 and "base_model.dtype" in result.stderr
