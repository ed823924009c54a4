"""The eval stage on real tasks with the scripted agents of tests/evaluation/test_trial.py: its outputs, and
champion registration in a throwaway MLflow store (loading the registered model back: tests/core/test_registry.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipelines.core.errors import UserError
from pipelines.core.params import load_params, parse_params
from pipelines.core.schema import read_trajectories
from pipelines.core.registry import register_champion
from pipelines.core.tracking import dvc_md5
from pipelines.eval import EvalOutputs, run_eval
from pipelines.evaluation.models import check_inputs
from pipelines.evaluation.suites.humaneval import load_humaneval
from tests.conftest import REPO, run_module
from tests.evaluation.test_trial import R, bad, eval_tasks, good, params


@pytest.fixture(autouse=True)
def project(tmp_path, monkeypatch) -> Path:
    """A project root with a (fake) SFT adapter, and MLflow pointed at a SQLite file inside it."""
    root = tmp_path / "proj"
    (root / "models" / "base").mkdir(parents=True)
    (root / "models" / "sft").mkdir(parents=True)
    (root / "models" / "sft" / "adapter_config.json").write_text('{"peft_type": "LORA"}\n')
    shutil.copytree(REPO / "data" / "tasks", root / "data" / "tasks")  # the held-out tasks, as a checkout has them
    monkeypatch.setenv("LIMI_ROOT", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.delenv("LIMI_PARENT_RUN_ID", raising=False)
    return root


# --- the stage's outputs and the champion ---------------------------------------------------------------

def run_stage(root: Path, models: dict, tasks=None):
    from pipelines.core.tracking import stage_run

    p = params()
    with stage_run("eval", p.group("eval"), root=root) as run:
        result = run_eval(p, root, models=models, tasks=tasks or eval_tasks(), tracker=run)
    return result, run.run_id


def registered_versions(name: str = "limi-sft") -> list:
    from mlflow import MlflowClient

    return MlflowClient().search_model_versions(f"name='{name}'")


def test_tuned_beating_base_writes_outputs_and_becomes_champion(project):
    result, run_id = run_stage(project, {"base": bad, "tuned": good})
    out = EvalOutputs.under(project)

    metrics = json.loads(out.metrics.read_text())
    assert metrics == json.loads(json.dumps(result))
    assert set(metrics["models"]) == {"base", "tuned"} and metrics["k"] == 1 and metrics["baseline"] == "base"
    assert metrics["headline"]["tuned"]["sr_at_r"] == 100 and metrics["headline"]["base"]["sr_at_r"] == 0
    assert metrics["headline"]["tuned"]["ftfc"] == 100 and metrics["headline"]["base"]["ftfc"] == 0
    assert metrics["deltas"]["tuned"]["agencybench_average"] == pytest.approx(100)
    assert metrics["deltas"]["tuned"]["tool_call_validity"] == 0
    assert metrics["headline"]["base"]["infra_error_rate"] == 0
    assert metrics["models"]["tuned"]["categories"]["codebase_debugging"]["tasks"] == 1
    assert metrics["suites"]["humaneval"]["tuned"]["sr_at_r"] == 100
    # what is to be registered, never the version MLflow gave it: outputs are functions of the inputs
    assert metrics["champion"]["winner"] == "tuned"
    assert metrics["champion"]["register_as"] == {"name": "limi-sft", "alias": "champion"}

    records = read_trajectories(out.episodes_dir / "episodes.jsonl")
    assert len(records) == 4 and {r["meta"]["model"] for r in records} == {"base", "tuned"}
    # outputs are functions of the inputs: no timings or dates; those go to the run's report
    assert "seconds" not in out.metrics.read_text() and "seconds" not in out.report.read_text()
    assert all(not {"timings", "evaluated_at"} & set(r["meta"]) and "seconds" not in r["meta"]["outcome"]
               for r in records)
    timings = json.loads((project / "reports/runs/eval.json").read_text())
    assert len(timings["trials"]) == 4 and set(timings["mean_seconds"]) == {"base", "tuned"}

    report = out.report.read_text()
    assert "| metric | base | tuned | Δ tuned − base |" in report
    # every task flips from failed to solved: the intervals are points and the paired one lies above zero
    assert "| FTFC | 0.0 [0.0, 0.0] | 100.0 [100.0, 100.0] | +100.0 [+100.0, +100.0] |" in report
    assert f"| SR@{R} | 0.0 [0.0, 0.0] | 100.0 [100.0, 100.0] | +100.0 [+100.0, +100.0] |" in report
    assert metrics["comparisons"]["tuned"]["agencybench_average"]["significant"] is True
    # both agents open with a well-formed call and end with finish: the tool-use measures do not tell them apart
    first_calls = [metrics["headline"][name]["first_call_validity"] for name in ("base", "tuned")]
    assert first_calls == [100, 100]
    assert metrics["deltas"]["tuned"]["finish_rate"] == 0 and metrics["models"]["base"]["overall"]["finish_rate"] == 100
    assert "| first-call validity | 100.0 [100.0, 100.0] | 100.0 [100.0, 100.0] |" in report
    assert "| finish rate | 100.0 [100.0, 100.0] | 100.0 [100.0, 100.0] |" in report
    assert "| codebase_debugging | 1 |" in report and "k = 1" in report and f"R = {R}" in report
    assert "temperature 0" in report and "alias `champion`" in report
    for png in ("metrics.png", "categories.png"):
        assert (out.plots / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from mlflow import MlflowClient

    client = MlflowClient()
    version = client.get_model_version_by_alias("limi-sft", "champion")
    assert version.run_id == run_id and version.source.startswith("models:/m-")  # a logged model, not loose files
    model = client.get_logged_model(version.source.removeprefix("models:/"))
    assert model.source_run_id == run_id and model.name == "sft_model"
    files = {f.path for f in client.list_logged_model_artifacts(model.model_id, "artifacts")}
    assert files == {"artifacts/base", "artifacts/sft"}  # the base folder and the adapter, copied into the model
    scores = {m.key: m.value for m in model.metrics}  # the winner's eval metrics, against the model
    assert scores["sr_at_r"] == 100 and scores["ftfc"] == 100
    assert scores["delta.agencybench_average"] == pytest.approx(100) and "base.sr_at_r" not in scores
    assert version.tags["sft_md5"] == dvc_md5(project / "models" / "sft") and version.tags["sft_kind"] == "lora"
    assert version.tags["base_md5"] == dvc_md5(project / "models" / "base") and version.tags["model"] == "tuned"
    assert version.tags["main_metric"] == "agencybench_average"
    run = client.get_run(run_id)
    assert run.data.metrics["tuned.sr_at_r"] == 100 and run.data.metrics["base.ftfc"] == 0
    assert run.data.tags["registry.version"] == str(version.version)
    assert {f.path for f in client.list_artifacts(run_id, "plots")} == {"plots/metrics.png", "plots/categories.png"}


def test_tuned_losing_registers_nothing(project):
    humaneval = [load_humaneval(limit=1)[0]]
    result, _ = run_stage(project, {"base": good, "tuned": bad}, tasks=humaneval)
    assert result["champion"]["winner"] is None and result["champion"]["register_as"] is None
    assert registered_versions() == []
    report = EvalOutputs.under(project).report.read_text()
    assert "No significant difference" in report and "Nothing was registered" in report


def test_registration_without_a_run_is_skipped(project):
    assert register_champion(None, project / "models" / "sft") is None


# --- inputs and params ----------------------------------------------------------------------------------

def test_missing_sft_output_is_one_clear_line(project):
    (project / "models" / "sft" / "adapter_config.json").unlink()
    (project / "models" / "sft").rmdir()
    with pytest.raises(UserError, match=r"^models/sft not found; run `dvc repro sft`$"):
        check_inputs(params(), project)
    (project / "params.yaml").write_text((REPO / "params.yaml").read_text())
    result = run_module("pipelines.eval", root=project, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: models/sft not found; run `dvc repro sft`"


def test_eval_params():
    repo = load_params(REPO / "params.yaml").eval
    assert [s.name for s in repo.suites] == ["builtin", "humaneval", "easy"] and repo.main_metric == "agencybench_average"
    assert [(m.name, m.adapter) for m in repo.models] == [("base", None), ("tuned", "models/sft")]
    with pytest.raises(UserError, match="agencybench suite needs directory"):
        parse_params({"eval": {"suites": [{"name": "agencybench"}]}})
    with pytest.raises(UserError, match="eval.models.0.model names 'gpt'"):
        parse_params({"eval": {"models": [{"name": "x", "model": "gpt"}]}})


# --- traces and plot data -------------------------------------------------------------------------------

def test_each_trial_is_a_trace_and_the_plot_data_is_dvc_plots(project):
    import csv
    import subprocess
    import sys

    from mlflow import MlflowClient

    _, run_id = run_stage(project, {"base": bad, "tuned": good})
    out = EvalOutputs.under(project)
    client = MlflowClient()
    experiment = client.get_run(run_id).info.experiment_id
    traces = client.search_traces(locations=[experiment], run_id=run_id)
    records = {(r["meta"]["model"], r["meta"]["task_id"]): r
               for r in read_trajectories(out.episodes_dir / "episodes.jsonl")}
    assert sorted((t.info.tags["limi.model"], t.info.tags["limi.task_id"]) for t in traces) == sorted(records)
    for trace in traces:
        record = records[(trace.info.tags["limi.model"], trace.info.tags["limi.task_id"])]
        assert trace.info.tags["limi.stage"] == "eval" and trace.info.tags["limi.run_id"] == run_id
        root = next(s for s in trace.data.spans if s.parent_id is None)
        subtasks = [s for s in trace.data.spans if s.parent_id == root.span_id]
        assert len(subtasks) == len(record["meta"]["subtasks"]) and all(s.name.startswith("subtask ") for s in subtasks)
        kinds = [s.span_type for s in trace.data.spans]
        assert kinds.count("CHAT_MODEL") == sum(m["role"] == "assistant" for m in record["messages"])
        assert kinds.count("TOOL") == sum(m["role"] == "tool" for m in record["messages"])
        verdicts = {a.name: a.value for a in trace.info.assessments}
        assert verdicts["passed"] is record["meta"]["passed"]
        for number, subtask in enumerate(record["meta"]["subtasks"], 1):
            for check in subtask["final"]["checks"]:
                assert verdicts[f"{number}. {check['name'].splitlines()[0]}"[:100]] is check["passed"]

    rows = list(csv.DictReader((out.plots / "metrics.csv").open()))
    tuned = {r["metric"]: r for r in rows if r["model"] == "tuned"}
    assert float(tuned["sr_at_r"]["value"]) == 100 and tuned["sr_at_r"]["label"] == f"tuned: SR@{R}"
    assert float(tuned["ftfc"]["lo"]) == float(tuned["ftfc"]["hi"]) == 100
    categories = list(csv.DictReader((out.plots / "categories.csv").open()))
    assert {(r["model"], r["category"]) for r in categories} >= {("tuned", "codebase_debugging")}
    before = {p.name: p.read_bytes() for p in [*out.plots.glob("*.csv"), out.metrics, out.report]}
    run_stage(project, {"base": bad, "tuned": good})  # a function of the inputs: the same bytes again
    assert {p.name: p.read_bytes() for p in [*out.plots.glob("*.csv"), out.metrics, out.report]} == before
    # though the registry moved on: a second version, which the alias now names
    assert str(client.get_model_version_by_alias("limi-sft", "champion").version) == "2"

    # DVC reads them as the eval stage's plots
    shutil.copy(REPO / "dvc.yaml", project / "dvc.yaml")
    shutil.copy(REPO / "params.yaml", project / "params.yaml")  # dvc.yaml's ${collect.shards}, ${eval.shards}
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run(dvc + ["init", "--no-scm", "-q"], cwd=project, check=True)
    shown = subprocess.run(dvc + ["plots", "show", "--json"], cwd=project, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)["data"]
    (metrics_plot,) = data["plots/eval/metrics.csv"]
    values = metrics_plot["content"]["data"]["values"]
    scores = {(v["label"], float(v["value"])) for v in values if v["value"]}  # empty: no value (RC@R, say)
    assert scores >= {(f"tuned: SR@{R}", 100.0), (f"base: SR@{R}", 0.0)}
    assert metrics_plot["content"]["encoding"]["y"]["field"] == "label"
    assert data["plots/eval/categories.csv"] and data["plots/eval/metrics.png"]


def test_sharded_eval_merges_to_the_outputs_of_one_unsharded_run(project, tmp_path):
    from pipelines.eval import merge_shards, run_shard

    models, tasks = {"base": bad, "tuned": good}, eval_tasks()
    run_eval(params(), project, models=models, tasks=tasks)
    two = params(shards=2)
    counts = [len(run_shard(two, project, project / f"data/shards/eval/{i}", i, models=models, tasks=tasks))
              for i in range(2)]
    assert sum(counts) == len(tasks) * len(models)
    merged = EvalOutputs(tmp_path / "m/eval", tmp_path / "m/eval.json", tmp_path / "m/eval.md", tmp_path / "m/plots")
    merge_shards(two, project, tasks, outputs=merged)
    plain = EvalOutputs.under(project)
    for a, b in [(plain.episodes_dir / "episodes.jsonl", merged.episodes_dir / "episodes.jsonl"),
                 (plain.metrics, merged.metrics), (plain.report, merged.report),
                 (plain.plots / "metrics.csv", merged.plots / "metrics.csv"),
                 (plain.plots / "categories.csv", merged.plots / "categories.csv")]:
        assert a.read_bytes() == b.read_bytes(), a.name
    # a shard's output of another shard count is refused with the file and line
    (project / "data/shards/eval/1/episodes.jsonl").write_text(
        (project / "data/shards/eval/0/episodes.jsonl").read_text())
    with pytest.raises(UserError, match=r"data/shards/eval/1/episodes.jsonl:1: trial .* not shard 1's of 2"):
        merge_shards(two, project, tasks, outputs=merged)
