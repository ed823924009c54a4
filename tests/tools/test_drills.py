"""The drill tasks: written deterministically, every one solved by its reference and not by its start, worded
apart from the easy eval tier, and played by the replay teacher into a verified trajectory in bubblewrap."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from pipelines.collection.episode import Collector
from pipelines.collection.plan import Job
from pipelines.core.params import parse_params
from pipelines.core.seeds import DRILLS_DIR, load_seed_tasks
from pipelines.tools.drills import FAMILIES, generate, main
from tests.conftest import REPO


def test_the_shipped_drills_are_what_the_generator_writes(tmp_path):
    main(["--out", str(tmp_path / "drills")])
    made = sorted(p.relative_to(tmp_path / "drills") for p in (tmp_path / "drills").rglob("*") if p.is_file())
    shipped = sorted(p.relative_to(DRILLS_DIR) for p in DRILLS_DIR.rglob("*") if p.is_file())
    assert made == shipped
    assert all((tmp_path / "drills" / p).read_bytes() == (DRILLS_DIR / p).read_bytes() for p in made)


def test_every_drill_fails_at_its_start_and_passes_with_its_solution(tmp_path):
    tasks = load_seed_tasks(DRILLS_DIR)
    assert len(tasks) == 12 * len(FAMILIES) and {t.source for t in tasks} == {"drill"}
    assert {t.provenance["family"] for t in tasks} == set(FAMILIES)
    for task in tasks:
        work = tmp_path / task.id
        shutil.copytree(REPO / task.workspace.dir, work, ignore=shutil.ignore_patterns(".keep"))
        run = lambda: [subprocess.run(c, shell=True, cwd=work, capture_output=True).returncode  # noqa: E731
                       for c in task.verifier.commands]
        assert any(run()), f"{task.id}: its checks pass before any change"
        shutil.copytree(REPO / task.provenance["solution_dir"], work, dirs_exist_ok=True)
        assert not any(run()), f"{task.id}: its reference solution fails its checks"


def test_drill_requests_are_distinct_and_worded_apart_from_the_easy_tier():
    from pipelines.evaluation.suites.easy import load_easy

    drills = generate(12, 0)
    assert len({d.query for _, d in drills}) == len(drills)
    assert generate(12, 0) == drills and generate(12, 1) != drills  # seeded
    words = lambda text: text.lower().split()  # noqa: E731
    grams = lambda text, n=8: {tuple(words(text)[i:i + n]) for i in range(len(words(text)) - n + 1)}  # noqa: E731
    easy = set().union(*(grams(s.query) for t in load_easy() for s in t.subtasks))
    assert not [d.query for _, d in drills if grams(d.query) & easy]  # not even an 8-word run in common


@pytest.mark.needs_bwrap
def test_the_replay_finds_a_shell_fact_by_running_its_reference_command_then_writes_it():
    task = next(t for t in load_seed_tasks(DRILLS_DIR) if t.provenance["family"] == "shell_fact")
    record = Collector(parse_params({"collect": {"sandbox": "bwrap"}}), REPO).run(Job(task, "replay", "drill-test"))
    assert record["meta"]["passed"], record["meta"]
    calls = [c["function"] for m in record["messages"] if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    [command] = task.provenance["reference_runs"]
    names = [c["name"] for c in calls]
    # the command comes before the answer is written, and the answer is what the command printed
    ran = names.index("bash", 1)
    assert calls[ran]["arguments"]["command"] == command and names[ran + 1:] == ["write_file", "finish"]
    output = next(m["content"] for m in record["messages"] if m["role"] == "tool" and
                  m.get("tool_call_id") == record["messages"][[i for i, m in enumerate(record["messages"])
                                                               if m["role"] == "assistant"][ran]]["tool_calls"][0]["id"])
    assert calls[ran + 1]["arguments"]["content"].strip() in output
    assert not set(task.verifier.commands) & {c["arguments"].get("command") for c in calls}  # never a check
    json.dumps(record)
