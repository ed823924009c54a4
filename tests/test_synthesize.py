"""Synthesis: teacher drafts, critic scores and rewrites, near-duplicate rejection, the report's arithmetic."""

import json

import pytest

from pipelines.llm.scripted import ScriptedModel
from pipelines.synthesis.config import SynthesisTarget, SynthesizeParams
from pipelines.core.schema import read_queries
from pipelines.core.seeds import load_seed_tasks
from pipelines.synthesis.loop import synthesize
from pipelines.synthesis.report import REJECTIONS
from tests.synthesis.answers import ANALYSIS, GOOD, REWRITTEN, scores, task


@pytest.fixture(scope="module")
def seeds():
    return load_seed_tasks()


def params(*categories, **overrides):
    targets = [SynthesisTarget(category=c) for c in categories or ("algorithm",)]
    return SynthesizeParams(**{"targets": targets, "max_categories": 0, "per_category": 1, "attempts": 1,
                               "max_rewrites": 1, **overrides})


def run(tmp_path, p, teacher, critic, seeds):
    report = synthesize(p, teacher, critic, seeds, tmp_path / "synthetic.jsonl", tmp_path / "synthesize.json")
    assert json.loads((tmp_path / "synthesize.json").read_text()) == json.loads(json.dumps(report))
    queries = read_queries(tmp_path / "synthetic.jsonl")  # validates every line as a Query
    assert all(q.source == "synthetic" and q.verifier.kind == "tests" and q.verifier.commands for q in queries)
    assert len(queries) == report["accepted"]
    assert report["accepted"] + sum(report["rejections"].values()) == report["requested"]
    assert sum(r["accepted"] for r in report["per_category"].values()) == report["accepted"]
    assert sum(r["requested"] for r in report["per_category"].values()) == report["requested"]
    assert len(report["dropped"]) == report["rejected"]
    return report, queries


def test_low_score_is_rewritten_with_the_critique_and_accepted(tmp_path, seeds):
    teacher = ScriptedModel([task(**GOOD), task(**REWRITTEN)], name="t")
    critic = ScriptedModel([scores(verifiability=2, notes="checks miss the unsorted case"), scores(verifiability=5)],
                           name="c")
    report, (query,) = run(tmp_path, params(), teacher, critic, seeds)
    assert report["rewrites"] == 1 and report["accepted_after_rewrite"] == 1 and report["acceptance_rate"] == 1.0
    assert query.id == "syn-algorithm-1" and query.query == REWRITTEN["query"]
    assert query.workspace.files == GOOD["workspace_files"] and query.verifier.commands == GOOD["checks"]
    prov = query.provenance
    assert prov["teacher"] == "t" and prov["critic"] == "c" and prov["rewrites"] == 1 and prov["score"] == 3.0
    assert [d["scores"]["verifiability"] for d in prov["drafts"]] == [2, 5]
    assert prov["drafts"][0]["notes"] == "checks miss the unsorted case"
    assert prov["seed_examples"][:2] == ["seed-build-order", "seed-free-slots"]  # the category's own seeds first
    first, rewrite = (r["messages"][0]["content"] for r in teacher.requests)
    build_order = next(s for s in seeds if s.id == "seed-build-order")
    assert json.dumps(build_order.query, ensure_ascii=False)[1:-1] in first  # the seed, as submit_task arguments
    assert "checks miss the unsorted case" in rewrite and "verifiability 2" in rewrite and GOOD["query"] in rewrite
    assert teacher.requests[0]["sampling"]["tool_choice"]["function"]["name"] == "submit_task"
    assert GOOD["query"] in critic.requests[0]["messages"][0]["content"]


def test_still_under_the_bar_after_rewrites_is_rejected(tmp_path, seeds):
    teacher = ScriptedModel([task(**GOOD), task(**REWRITTEN)])
    critic = ScriptedModel([scores(difficulty=1), scores(difficulty=2, realism=5)])
    report, queries = run(tmp_path, params(), teacher, critic, seeds)
    assert queries == [] and report["rejections"]["below_bar"] == 1
    (drop,) = report["dropped"]
    assert "min score 2.00 < 3.0 after 1 rewrite" in drop["reason"] and len(drop["drafts"]) == 2
    # with the mean rule the same scores pass: (5 + 4 + 4 + 2) / 4 >= 3
    teacher = ScriptedModel([task(**GOOD), task(**REWRITTEN)])
    critic = ScriptedModel([scores(difficulty=1), scores(difficulty=2, realism=5)])
    report, (query,) = run(tmp_path, params(score_rule="mean", min_score=3.5), teacher, critic, seeds)
    assert query.provenance["score"] == 3.75


def test_near_duplicate_of_a_seed_is_rejected_before_the_critic(tmp_path, seeds):
    seed = next(s for s in seeds if s.id == "seed-version-sort")
    copy = dict(GOOD, query=seed.query.replace("version", "release", 1))
    critic = ScriptedModel([])  # would raise if asked
    report, queries = run(tmp_path, params(), ScriptedModel([task(**copy)]), critic, seeds)
    assert queries == [] and report["rejections"]["duplicate_of_seed"] == 1 and not critic.requests
    assert report["dropped"][0]["reason"].startswith("seed-version-sort (Jaccard 0.")


def test_near_duplicate_of_an_earlier_accepted_draft_is_rejected(tmp_path, seeds):
    again = dict(GOOD, query=GOOD["query"].replace("still a stub", "not written yet"))
    teacher = ScriptedModel([task(**GOOD), task(**again)])
    report, queries = run(tmp_path, params(per_category=2), teacher, ScriptedModel([scores()]), seeds)
    assert [q.id for q in queries] == ["syn-algorithm-1"]
    assert report["rejections"]["duplicate_of_accepted"] == 1
    assert report["dropped"][0]["reason"].startswith("syn-algorithm-1 (Jaccard ")
    assert "Already written for this category" in teacher.requests[1]["messages"][0]["content"]
    assert report["per_category"]["algorithm"] == {"domain": "software", "requested": 2, "accepted": 1, "rejected": 1}


def test_invalid_function_calls_are_retried_then_dropped(tmp_path, seeds):
    broken = '<tool_call>\n{"name": "submit_task", "arguments": {"query": "Write a\n</tool_call>'
    teacher = ScriptedModel([broken, task(**dict(GOOD, checks=[]))])
    report, queries = run(tmp_path, params(attempts=2, retry_temperature=0.9), teacher, ScriptedModel([]), seeds)
    assert queries == [] and report["rejections"]["teacher_invalid"] == 1 and report["calls"] == {"teacher": 2}
    assert report["dropped"][0]["reason"] == "checks is not a non-empty list of shell commands"
    assert report["dropped"][0]["last_output"].startswith('[{"name": "submit_task", "arguments": {"query": "intervals')
    first, second = (r["sampling"] for r in teacher.requests)
    assert "temperature" not in first and second["temperature"] == 0.9 and second["seed"] == 1
    # a retry that succeeds keeps the draft; garbage from the critic drops it with the critic's problem
    teacher = ScriptedModel(["I would rather chat.", task(**GOOD)])
    critic = ScriptedModel(['<tool_call>{"name": "submit_scores", "arguments": {"realism": </tool_call>',
                            scores(realism="high")])
    report, queries = run(tmp_path, params(attempts=2), teacher, critic, seeds)
    assert queries == [] and report["rejections"]["critic_invalid"] == 1
    assert report["calls"] == {"teacher": 2, "critic": 2}
    assert report["dropped"][0]["reason"] == "realism is 'high', not an integer from 1 to 5"


def test_one_run_over_several_categories_adds_up(tmp_path, seeds):
    teacher = ScriptedModel([task(**GOOD), "no call at all", task(**ANALYSIS)])
    critic = ScriptedModel([scores(), scores(specificity=5)])
    p = params("algorithm", "codebase_debugging", "research")
    report, queries = run(tmp_path, p, teacher, critic, seeds)
    assert [q.id for q in queries] == ["syn-algorithm-1", "syn-research-1"]
    assert queries[1].domain == "research" and queries[1].workspace.files["runs_b.csv"].startswith("step,loss")
    assert report["requested"] == 3 and report["accepted"] == 2 and report["acceptance_rate"] == 0.6667
    assert set(report["rejections"]) == set(REJECTIONS) and report["rejections"]["teacher_invalid"] == 1
    assert report["dropped"][0]["reason"].startswith("did not call submit_task")
    assert report["top_reasons"][0]["count"] == 1


class RecordingTracker:
    """A stand-in for the stage's MLflow handle that keeps what the stage sends it."""

    def __init__(self):
        self.metrics, self.artifacts, self.timings = {}, [], {}

    def log_metrics(self, metrics, step=None):
        self.metrics.update(metrics)

    def log_artifact(self, path, artifact_path=None):
        self.artifacts.append(path)

    def record_timings(self, figures, root=None):
        self.timings.update(figures)


def test_outputs_repeat_byte_for_byte_and_timings_go_to_the_tracker(tmp_path, seeds):
    def once(folder):
        folder.mkdir()
        tracker = RecordingTracker()
        teacher, critic = ScriptedModel([task(**GOOD), "no call at all"], name="t"), ScriptedModel([scores()], name="c")
        synthesize(params(per_category=2), teacher, critic, seeds, folder / "synthetic.jsonl",
                   folder / "synthesize.json", tracker=tracker)
        return tracker

    first, _ = once(tmp_path / "a"), once(tmp_path / "b")
    for name in ("synthetic.jsonl", "synthesize.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    report = json.loads((tmp_path / "a" / "synthesize.json").read_text())
    assert report["accepted"] == 1 and report["calls"] == {"teacher": 2, "critic": 1}
    assert not {"seconds", "model_seconds"} & set(report)  # run-dependent: MLflow and reports/runs/ only
    assert set(first.timings) == {"seconds", "model_seconds"}
    assert set(first.timings["model_seconds"]) == {"teacher", "critic"}
    assert first.metrics["accepted"] == 1 and first.artifacts == [tmp_path / "a" / "synthesize.json"]
