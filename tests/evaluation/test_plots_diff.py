"""`dvc plots diff` lines up the eval plot data of two DVC experiments.

A tiny DVC project under git declares its ``eval`` stage's plots exactly as the repository's dvc.yaml does;
the stage turns made-up trial outcomes (how many of two tasks the tuned model solves is the experiment's
parameter) into metrics with the eval stage's own summary (:func:`eval_metrics`) and writes the plot files
with its own writer (:func:`write_plots`). Two ``dvc exp run``s with different parameters, then
``dvc plots diff EXP_A EXP_B --json`` shows both experiments' rows of plots/eval/metrics.csv and
categories.csv, each with the numbers its own run wrote.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO

#: the stage: the eval stage's summary and plot writer on outcomes decided by demo.yaml's tuned_solves
STAGE = '''
from pathlib import Path

import yaml

from pipelines.core.params import load_params
from pipelines.core.schema import VerifierSpec
from pipelines.evaluation.metrics import EpisodeOutcome
from pipelines.evaluation.report import write_plots
from pipelines.evaluation.suites.common import EvalTask, Subtask
from pipelines.evaluation.summary import eval_metrics
from pipelines.evaluation.trial import Trial

settings = load_params(Path("params.yaml")).eval
solves = yaml.safe_load(Path("demo.yaml").read_text())["tuned_solves"]
R = settings.rounds
tasks = [EvalTask(id=f"t{i}", suite="builtin", domain="software", category=category,
                  subtasks=[Subtask(f"Do task {i}.", VerifierSpec(kind="tests", commands=["true"]))])
         for i, category in enumerate(("algorithm", "codebase_debugging"))]


def outcome(task, model, solved):
    return EpisodeOutcome(task_id=task.id, model=model, trial=0, category=task.category, subtasks_total=1,
                          subtasks_met_first_round=int(solved), completed=solved, rounds_used=1 if solved else R,
                          max_rounds=R, tool_calls=3, steps=3, requirements_met_first_round=int(solved),
                          query_rounds=(1,) if solved else (), first_call_valid=True, finish_calls=1)


trials = [Trial(task, outcome(task, "base", False), {}) for task in tasks]
trials += [Trial(task, outcome(task, "tuned", i < solves), {}) for i, task in enumerate(tasks)]
result = eval_metrics(trials, tasks, settings, ["base", "tuned"])
write_plots(Path("plots/eval"), result, settings)
'''


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(cmd)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def plots_project(root: Path, env: dict) -> Path:
    """git + DVC project whose eval stage has the repository's plot definitions."""
    repo_eval = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["eval"]
    root.mkdir()
    (root / "eval_plots.py").write_text(STAGE)
    (root / "demo.yaml").write_text("tuned_solves: 0\n")
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    stage = {"cmd": "python eval_plots.py", "deps": ["eval_plots.py", "params.yaml"],
             "params": [{"demo.yaml": ["tuned_solves"]}], "plots": repo_eval["plots"]}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"eval": stage}}, sort_keys=False))
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    run(["git", "init", "-q"], root, env)
    run([sys.executable, "-m", "dvc", "init", "-q"], root, env)
    run([*git, "add", "."], root, env)
    run([*git, "commit", "-qm", "eval plots"], root, env)
    return root


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_dvc_plots_diff_shows_the_eval_plot_data_of_two_experiments(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "DVC_NO_ANALYTICS": "1",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    env.pop("LIMI_ROOT", None)
    root = plots_project(tmp_path / "proj", env)
    dvc = [sys.executable, "-m", "dvc"]
    written = {}
    for name, solves in (("tuned-solves-none", 0), ("tuned-solves-both", 2)):
        run([*dvc, "exp", "run", "-q", "-n", name, "-S", f"demo.yaml:tuned_solves={solves}"], root, env)
        written[name] = {f: csv_rows((root / "plots/eval" / f).read_text()) for f in ("metrics.csv", "categories.csv")}
    sr = f"tuned: SR@{yaml.safe_load((REPO / 'params.yaml').read_text())['eval']['rounds']}"
    scores = {name: {r["label"]: r["value"] for r in rows["metrics.csv"]} for name, rows in written.items()}
    assert float(scores["tuned-solves-none"][sr]) == 0 and float(scores["tuned-solves-both"][sr]) == 100

    out = run([*dvc, "plots", "diff", "tuned-solves-none", "tuned-solves-both", "--json"], root, env)
    data = json.loads(out)["data"]
    for plot, x in (("metrics.csv", "value"), ("categories.csv", "sr_at_r")):
        entries = data[f"plots/eval/{plot}"]
        assert len(entries) == 1, entries  # one chart of both experiments
        values = entries[0]["content"]["data"]["values"]
        assert entries[0]["content"]["encoding"]["x"]["field"] == x
        by_rev: dict[str, dict[str, str]] = {}
        for v in values:
            by_rev.setdefault(v["rev"], {})[v["label"]] = v[x]
        assert set(by_rev) == {"tuned-solves-none", "tuned-solves-both"}, set(by_rev)
        for name, rows in written.items():
            assert by_rev[name] == {r["label"]: r[x] for r in rows[plot]}, (plot, name)
    # the experiments differ where the tuned model does, and only there
    changed = {label for label in scores["tuned-solves-none"]
               if scores["tuned-solves-none"][label] != scores["tuned-solves-both"][label]}
    assert sr in changed and all(label.startswith("tuned: ") for label in changed)
