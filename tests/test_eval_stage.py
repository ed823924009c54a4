"""The eval stage on real tasks (a builtin task, a HumanEval problem) with scripted agents: a good one that
applies the reference solutions, a bad one that never works, a late one that needs one round of feedback.
Checks the protocol's outcomes, the outputs, and champion registration in a throwaway MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.agent.sandbox.bwrap import BwrapSandbox
from pipelines.core.errors import UserError
from pipelines.eval import EvalOutputs, check_inputs, evaluate, register_champion, run_eval
from pipelines.evaluation.suites import EvalTask, Subtask, builtin_solution_dir, load_builtin, load_humaneval
from pipelines.llm.scripted import ScriptedModel
from pipelines.core.params import load_params, parse_params
from pipelines.core.schema import VerifierSpec, read_trajectories
from tests.conftest import REPO, run_module

SANDBOX = "bwrap" if BwrapSandbox.available() else "none"
R = 3


@pytest.fixture(autouse=True)
def project(tmp_path, monkeypatch) -> Path:
    """A project root with a (fake) SFT adapter, and MLflow pointed at a SQLite file inside it."""
    root = tmp_path / "proj"
    (root / "models" / "base").mkdir(parents=True)
    (root / "models" / "sft").mkdir(parents=True)
    (root / "models" / "sft" / "adapter_config.json").write_text('{"peft_type": "LORA"}\n')
    monkeypatch.setenv("LIMI_ROOT", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.delenv("LIMI_PARENT_RUN_ID", raising=False)
    return root


def eval_tasks():
    """One builtin task (2 subtasks) and one HumanEval problem, loaded under the test's project root."""
    builtin = next(t for t in load_builtin() if t.id == "contacts-import-fixes")
    return [builtin, load_humaneval(limit=1)[0]]


def params(**overrides):
    return parse_params({"eval": {"rounds": R, "k": 1, "parallel": 2, "sandbox": SANDBOX, **overrides}})


# --- scripted agents ------------------------------------------------------------------------------------

def call(name: str, **arguments) -> dict:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


FINISH = {"content": "Done.", "tool_calls": [call("finish", summary="done")]}


def solution_turns(task) -> list[dict]:
    """One turn per subtask: write the reference files of that subtask, then finish."""
    if task.suite == "humaneval":
        code = task.subtasks[0].query.split("```python\n", 1)[1].rsplit("```", 1)[0]
        files = {"solution.py": code + task.provenance["canonical_solution"]}
        return [{"content": "", "tool_calls": [call("write_file", path=p, content=c) for p, c in files.items()]
                 + [call("finish", summary="wrote solution.py")]}]
    turns = []
    for number in range(1, len(task.subtasks) + 1):
        folder = builtin_solution_dir(task.id, number)
        writes = [call("write_file", path=str(p.relative_to(folder)), content=p.read_text())
                  for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".keep"]
        turns.append({"content": "", "tool_calls": writes + [call("finish", summary=f"subtask {number} done")]})
    return turns


def good(task, trial):
    return ScriptedModel(solution_turns(task), name="good")


def bad(task, trial):
    return ScriptedModel([FINISH] * (R * len(task.subtasks)), name="bad")


def late(task, trial):
    """Claims to be done at once, does the first subtask after feedback, the rest at the first try."""
    return ScriptedModel([FINISH, *solution_turns(task)], name="late")


# --- the protocol ---------------------------------------------------------------------------------------

def test_protocol_maps_subtasks_to_outcomes():
    tasks = eval_tasks()
    broken = ScriptedModel([], name="broken")  # its first answer raises ModelError: the harness's fault
    trials = evaluate(tasks, {"good": good, "bad": bad, "late": late, "broken": broken}, params().eval, parallel=2)
    by = {(t.outcome.model, t.task.suite): t for t in trials}
    assert len(trials) == 8

    first = by[("good", "builtin")].outcome
    assert (first.completed, first.subtasks_met_first_round, first.subtasks_total, first.rounds_used) == (True, 2, 2, 1)
    assert not first.infra_error and first.invalid_tool_calls == 0 and first.steps == 2
    assert by[("good", "humaneval")].outcome.completed

    failed = by[("bad", "builtin")]
    lost = failed.outcome
    assert (lost.completed, lost.subtasks_met_first_round, lost.rounds_used) == (False, 0, R)
    assert len(failed.record["meta"]["subtasks"]) == 1  # the task stops at the subtask that failed R rounds
    assert failed.outcome.steps == R and not failed.outcome.infra_error

    slow = by[("late", "builtin")]
    assert (slow.outcome.completed, slow.outcome.subtasks_met_first_round, slow.outcome.rounds_used) == (True, 1, 2)
    # one conversation: the second subtask's request follows the first subtask's work and feedback
    users = [m["content"] for m in slow.record["messages"] if m["role"] == "user"]
    assert users[0] == tasks[0].subtasks[0].query and users[-1] == tasks[0].subtasks[1].query
    assert any("checks fail" in u for u in users[1:-1])
    assert [s["rounds_used"] for s in slow.record["meta"]["subtasks"]] == [2, 1]

    crashed = by[("broken", "builtin")]
    assert crashed.outcome.infra_error and crashed.record["meta"]["termination"] == "infra_error"

    meta = slow.record["meta"]
    assert meta["sampling"]["temperature"] == 0.0 and meta["max_rounds"] == R and meta["passed"]
    assert meta["sandbox"]["kind"] == SANDBOX and "importer.py" in meta["final_diff"]


def test_rubric_subtasks_show_the_judge_the_agents_answer():
    task = EvalTask(id="capital-question", suite="agencybench", domain="research", category="research",
                    subtasks=[Subtask("Which city is the capital of France?",
                                      VerifierSpec(kind="rubric", criteria=["The answer names Paris."]))])

    def verdict(messages):
        met = "The capital is Paris" in messages[-1]["content"]  # only the transcript tail carries it
        return {"content": json.dumps({"scores": [{"criterion": 1, "met": met, "rationale": "checked"}]})}

    answer = {"content": "", "tool_calls": [call("finish", summary="The capital is Paris.")]}
    with pytest.raises(UserError, match="judge"):
        evaluate([task], {"agent": ScriptedModel([answer])}, params().eval)
    trials = evaluate([task], {"agent": ScriptedModel([answer])}, params().eval, judge=ScriptedModel([verdict]))
    assert trials[0].outcome.completed and trials[0].outcome.subtasks_met_first_round == 1


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
    assert metrics["champion"]["winner"] == "tuned" and metrics["champion"]["registered"]["version"] == "1"

    records = read_trajectories(out.episodes_dir / "episodes.jsonl")
    assert len(records) == 4 and {r["meta"]["model"] for r in records} == {"base", "tuned"}

    report = out.report.read_text()
    assert "| metric | base | tuned | Δ tuned − base |" in report
    assert "| FTFC | 0.0 | 100.0 | +100.0 |" in report and f"| SR@{R} | 0.0 | 100.0 | +100.0 |" in report
    assert "| codebase_debugging | 1 |" in report and "k = 1" in report and f"R = {R}" in report
    assert "temperature 0" in report and "alias `champion`" in report
    for png in ("metrics.png", "categories.png"):
        assert (out.plots / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from mlflow import MlflowClient

    client = MlflowClient()
    version = client.get_model_version_by_alias("limi-sft", "champion")
    assert version.run_id == run_id and version.source.endswith("/sft_model")
    logged = {f.path for f in client.list_artifacts(run_id, "sft_model")}
    assert logged == {"sft_model/adapter_config.json"}
    run = client.get_run(run_id)
    assert run.data.metrics["tuned.sr_at_r"] == 100 and run.data.metrics["base.ftfc"] == 0
    assert {f.path for f in client.list_artifacts(run_id, "plots")} == {"plots/metrics.png", "plots/categories.png"}


def test_tuned_losing_registers_nothing(project):
    humaneval = [load_humaneval(limit=1)[0]]
    result, _ = run_stage(project, {"base": good, "tuned": bad}, tasks=humaneval)
    assert result["champion"]["winner"] is None and result["champion"]["registered"] is None
    assert registered_versions() == []
    report = EvalOutputs.under(project).report.read_text()
    assert "did not beat the base" in report and "Nothing was registered" in report


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
    assert [s.name for s in repo.suites] == ["builtin", "humaneval"] and repo.main_metric == "agencybench_average"
    assert [(m.name, m.adapter) for m in repo.models] == [("base", None), ("tuned", "models/sft")]
    with pytest.raises(UserError, match="agencybench suite needs directory"):
        parse_params({"eval": {"suites": [{"name": "agencybench"}]}})
    with pytest.raises(UserError, match="eval.models.0.model names 'gpt'"):
        parse_params({"eval": {"models": [{"name": "x", "model": "gpt"}]}})
