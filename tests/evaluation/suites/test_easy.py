"""The easy eval tier loaded for real: small tasks of one to three tool calls, their checks run in bubblewrap
against their reference solutions, sharing nothing with the builtin suite or the training seeds, and kept
apart from training by curate's decontamination."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from pipelines.agent.sandbox.factory import make_sandbox
from pipelines.collection.episode import Collector
from pipelines.collection.plan import Job
from pipelines.core.errors import UserError
from pipelines.core.params import parse_params
from pipelines.core.seeds import load_seed_tasks
from pipelines.core.taxonomy import CATEGORIES, CATEGORY_DOMAIN
from pipelines.curation.config import DecontamParams
from pipelines.curation.decontam import EvalIndex, HiddenIndex, eval_texts, hidden_material
from pipelines.curation.funnel import alive, load_samples, step_decontam, step_hidden_material
from pipelines.evaluation.suites.builtin import load_builtin
from pipelines.evaluation.suites.common import EvalTask, prepare_eval_workspace
from pipelines.evaluation.suites.easy import apply_easy_solution, easy_dir, easy_solution_dir, load_easy
from pipelines.evaluation.tasks import answer_sources, load_suite
from tests.conftest import REPO

needs_bwrap = pytest.mark.needs_bwrap
EASY = load_easy()
SEEDS = load_seed_tasks(REPO / "data" / "seeds")


def exit_codes(workspace: Path, commands: list[str]) -> list[int]:
    sandbox = make_sandbox("bwrap", workspace, timeout_s=60)
    return [sandbox.run(command).exit_code for command in commands]


def test_easy_suite_shape():
    assert 30 <= len(EASY) <= 40
    assert len({t.id for t in EASY}) == len(EASY)
    assert {t.domain for t in EASY} == {"software", "research"}
    assert len({t.category for t in EASY}) >= 8
    assert [t.id for t in load_suite("easy")] == [t.id for t in EASY]
    for task in EASY:
        assert task.suite == "easy" and task.category in CATEGORIES
        assert task.domain == CATEGORY_DOMAIN[task.category], task.id
        assert 1 <= len(task.subtasks) <= 2, task.id
        assert task.provenance["held_out"] is True and task.provenance["tier"] == "easy"
        for sub in task.subtasks:
            assert sub.verifier.kind == "tests" and 1 <= len(sub.verifier.commands) <= 2, task.id
            assert len(sub.query.split()) <= 60, f"{task.id}: an easy request is a sentence or two"
        assert (REPO / task.workspace.dir).is_dir(), task.workspace.dir
        for k in range(1, len(task.subtasks) + 1):
            assert easy_solution_dir(task.id, k).is_dir()


def test_the_sandbox_hides_the_easy_answers():
    assert (REPO / "data" / "tasks" / "easy").resolve() in answer_sources(EASY)


def _shingles(text: str, n: int = 8) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _files(folders: list[Path]) -> set[bytes]:
    return {p.read_bytes() for folder in folders for p in folder.rglob("*") if p.is_file()} - {b""}


def test_easy_tasks_are_not_the_training_seeds_nor_builtin_tasks():
    builtin = load_builtin()
    others = [q.query for q in SEEDS] + [s.query for t in builtin for s in t.subtasks]
    other_shingles = set().union(*map(_shingles, others))
    other_files = _files([REPO / q.workspace.dir for q in SEEDS] + [REPO / t.workspace.dir for t in builtin])
    assert not {t.id for t in EASY} & ({q.id for q in SEEDS} | {t.id for t in builtin})
    for task in EASY:
        for sub in task.subtasks:
            shared = _shingles(sub.query) & other_shingles
            assert not shared, f"{task.id} shares wording with a seed or builtin task: {' '.join(next(iter(shared)))}"
        start = (REPO / task.workspace.dir).rglob("*")
        reused = [p.name for p in start if p.is_file() and p.read_bytes() in other_files]
        assert not reused, f"{task.id} starts from files of a seed or builtin task: {reused}"


def _seed_sample_texts(query) -> list[str]:
    """What a trajectory of seed ``query`` can hold: its request, its starting files, its reference solution
    (replay writes it through the tools) and its checks (a model-made trajectory may run commands like them)."""
    folder = REPO / "data" / "seeds" / query.id
    files = [p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name not in (".keep", "task.json")]
    return [query.query, *files, *query.verifier.commands]


def test_decontamination_keeps_the_seeds_when_the_easy_tier_is_evaluated():
    params = DecontamParams(builtin=True, easy=True, humaneval=False)
    texts = eval_texts(params, REPO)
    assert {name for name, _ in texts} >= {f"easy:{t.id}" for t in EASY}
    evals = EvalIndex(texts, params.ngram, params.min_matches)
    pieces = hidden_material(params, REPO)
    assert {name for name, _, _ in pieces} >= {f"easy:{t.id}" for t in EASY}
    hidden = HiddenIndex(pieces, params.ngram)
    for query in SEEDS:
        sample = _seed_sample_texts(query)
        assert evals.contamination("\n".join(sample)) is None, query.id
        assert hidden.leak(sample) is None, query.id


@needs_bwrap
def test_curate_keeps_the_seeds_replay_trajectories_when_the_easy_tier_is_evaluated(tmp_path):
    """The trajectories collect's replay teacher records for the seeds go through curate's decontamination
    and hidden-material steps against the builtin suite and the easy tier, and all of them stay."""
    collector = Collector(parse_params({"collect": {"sandbox": "bwrap"}}), REPO)
    records = [collector.attempt(Job(query, "replay", f"seed-{i}")).record for i, query in enumerate(SEEDS)]
    assert all(r and r["meta"]["passed"] for r in records), [r and r["meta"]["task_id"] for r in records]
    episodes = tmp_path / "episodes.jsonl"
    episodes.write_text("".join(json.dumps(r) + "\n" for r in records))
    samples = load_samples([episodes], tmp_path)
    params = DecontamParams(builtin=True, easy=True, humaneval=False)
    step_decontam(samples, EvalIndex(eval_texts(params, REPO), params.ngram, params.min_matches))
    step_hidden_material(samples, HiddenIndex(hidden_material(params, REPO), params.ngram))
    dropped = [(s.task_id, s.reason, s.detail) for s in samples if s.reason]
    assert not dropped and len(alive(samples)) == len(SEEDS)


def test_decontamination_catches_an_easy_task_pasted_into_a_sample():
    params = DecontamParams(builtin=False, easy=True, humaneval=False)
    evals = EvalIndex(eval_texts(params, REPO), params.ngram)
    task = next(t for t in EASY if t.id == "rows-in-readings")
    assert "easy:rows-in-readings" in evals.contamination("Please do this:\n" + task.subtasks[0].query)
    hidden = HiddenIndex(hidden_material(params, REPO), params.ngram)
    solution = (easy_dir() / "rename-area-function" / "solution" / "1" / "geometry.py").read_text()
    assert "easy:rename-area-function" in hidden.leak([f"I wrote geometry.py:\n{solution}"])
    assert eval_texts(DecontamParams(builtin=False, easy=False, humaneval=False), REPO) == []


@needs_bwrap
@pytest.mark.parametrize("task", EASY, ids=lambda t: t.id)
def test_easy_checks_fail_before_and_pass_after_each_solution(task: EvalTask, tmp_path):
    workspace = prepare_eval_workspace(task, tmp_path / "ws")
    for k, sub in enumerate(task.subtasks, 1):
        before = exit_codes(workspace, sub.verifier.commands)
        assert all(code != 0 for code in before), f"subtask {k}: checks already passing before its solution: {before}"
        apply_easy_solution(task.id, k, workspace)
        after = exit_codes(workspace, sub.verifier.commands)
        assert after == [0] * len(after), f"subtask {k}: checks failing after its solution: {after}"


def test_easy_loader_reports_bad_folders(tmp_path):
    good = easy_dir() / EASY[0].id
    shutil.copytree(good, tmp_path / "renamed")
    with pytest.raises(UserError, match=r"renamed.*task\.json: field id"):
        load_easy(tmp_path)
    shutil.rmtree(tmp_path / "renamed")
    shutil.copytree(good, tmp_path / EASY[0].id)
    shutil.rmtree(tmp_path / EASY[0].id / "workspace")
    with pytest.raises(UserError, match="missing the workspace/ folder"):
        load_easy(tmp_path)
    (tmp_path / EASY[0].id / "workspace").mkdir()
    data = json.loads((good / "task.json").read_text())
    data["subtasks"][0]["verifier"] = {"kind": "tests", "commands": [""]}
    (tmp_path / EASY[0].id / "task.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match="subtask 1 verifier field commands"):
        load_easy(tmp_path)
    with pytest.raises(UserError, match="easy eval task directory not found"):
        load_easy(tmp_path / "nowhere")
    with pytest.raises(UserError, match="no reference solution for subtask 2"):
        easy_solution_dir(EASY[0].id, 2, tmp_path)
