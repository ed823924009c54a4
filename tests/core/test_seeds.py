"""The seed tasks checked for real: each one's checks run in bubblewrap, failing as given, passing once solved."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from pipelines.agent.sandbox.factory import make_sandbox
from pipelines.core.errors import UserError
from pipelines.core.schema import Query
from pipelines.agent.workspace import prepare_workspace
from pipelines.core.seeds import apply_solution, load_seed_tasks, solution_dir
from pipelines.core.taxonomy import CATEGORIES, DOMAINS

REPO = Path(__file__).resolve().parents[2]
SEEDS = load_seed_tasks(REPO / "data" / "seeds")


def run_checks(query: Query, workspace: Path) -> list[tuple[int, str]]:
    """(exit code, output) of each verifier command, run in order in one sandbox, as the verifier does."""
    sandbox = make_sandbox("bwrap", workspace, timeout_s=60)
    return [(r.exit_code, r.output) for r in map(sandbox.run, query.verifier.commands)]


def test_seed_set_covers_the_taxonomy():
    assert len(SEEDS) >= 22
    categories = Counter(q.category for q in SEEDS)
    assert set(categories) == set(CATEGORIES), set(CATEGORIES) - set(categories)
    assert {q.domain for q in SEEDS} == set(DOMAINS)
    assert categories["research"] + categories["data_analysis"] >= 6
    assert len({q.id for q in SEEDS}) == len(SEEDS)


@pytest.mark.parametrize("query", SEEDS, ids=lambda q: q.id)
def test_seed_task_is_well_formed(query: Query):
    folder = REPO / "data" / "seeds" / query.id
    raw = json.loads((folder / "task.json").read_text())
    assert raw["id"] == folder.name and re.fullmatch(r"seed-[a-z0-9_\-]+", query.id)
    assert query.source == "human" and raw["provenance"]["author"] == "limi-pipelines seed set"
    assert query.verifier.kind == "tests" and 2 <= len(query.verifier.commands) <= 5
    assert (REPO / query.workspace.dir).resolve() == (folder / "workspace").resolve()  # relative to the root
    assert any(solution_dir(query.id, REPO / "data" / "seeds").iterdir())


@pytest.mark.needs_bwrap
@pytest.mark.parametrize("query", SEEDS, ids=lambda q: q.id)
def test_seed_checks_fail_as_given_and_pass_when_solved(query: Query, tmp_path):
    untouched = prepare_workspace(query, tmp_path / "untouched", REPO)
    before = run_checks(query, untouched)
    assert any(code != 0 for code, _ in before), "every check already passes on the starting workspace"

    solved = prepare_workspace(query, tmp_path / "solved", REPO)
    apply_solution(query.id, solved, REPO / "data" / "seeds")
    after = run_checks(query, solved)
    failing = [f"check {i}: exit {code}\n{out[-1500:]}" for i, (code, out) in enumerate(after) if code != 0]
    assert not failing, "\n".join(failing)


def write_task(root: Path, task_id: str, **overrides) -> Path:
    """A minimal valid seed task folder under ``root``, with ``overrides`` applied to its task.json."""
    folder = root / task_id
    (folder / "workspace").mkdir(parents=True)
    (folder / "workspace" / "data.txt").write_text("x\n")
    (folder / "solution").mkdir()
    (folder / "solution" / "out.txt").write_text("done\n")
    doc = {"id": task_id, "source": "human", "domain": "software", "category": "algorithm", "query": "Do it.",
           "verifier": {"kind": "tests", "commands": ["test -f out.txt"]}, "provenance": {}}
    doc.update(overrides)
    (folder / "task.json").write_text(json.dumps(doc))
    return folder


def test_bad_task_names_file_and_field(tmp_path):
    write_task(tmp_path, "seed-bad", category="cooking")
    with pytest.raises(UserError, match=r"seed-bad/task\.json: field category"):
        load_seed_tasks(tmp_path)


def test_id_must_match_folder(tmp_path):
    write_task(tmp_path, "seed-one", id="seed-two")
    with pytest.raises(UserError, match=r"seed-one/task\.json: field id"):
        load_seed_tasks(tmp_path)


def test_broken_json_names_file(tmp_path):
    folder = write_task(tmp_path, "seed-json")
    (folder / "task.json").write_text("{not json")
    with pytest.raises(UserError, match=r"seed-json/task\.json: not valid JSON"):
        load_seed_tasks(tmp_path)


def test_materialize_copies_dir_then_inline_files_and_solution_overrides(tmp_path):
    write_task(tmp_path / "seeds", "seed-ok", workspace={"files": {"sub/extra.txt": "inline\n"}})
    (query,) = load_seed_tasks(tmp_path / "seeds")
    ws = prepare_workspace(query, tmp_path / "ws", tmp_path)
    assert (ws / "data.txt").read_text() == "x\n" and (ws / "sub" / "extra.txt").read_text() == "inline\n"
    apply_solution("seed-ok", ws, tmp_path / "seeds")
    assert (ws / "out.txt").read_text() == "done\n"
